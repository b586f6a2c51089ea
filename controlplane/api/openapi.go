// SPDX-License-Identifier: Apache-2.0

package api

import (
	"encoding/json"
	"regexp"
	"strings"
)

// schemas are the OpenAPI component schemas, by name. They describe the
// JSON of the fleet types and request bodies above.
var schemas = map[string]any{
	"Error":      obj(props{"code": str("Stable error code: invalid, required, bad_json, unknown_field, body_too_large, not_found, conflict, bad_state, unauthorized, forbidden, exhausted, method_not_allowed, internal."), "field": str("JSON path of the field at fault, if any."), "message": str("")}, "code", "message"),
	"SIM":        obj(simProps()),
	"SIMWithKey": obj(withProp(simProps(), "privateKey", str("only when the platform generated the key in this call; never stored"))),
	"SIMCreateRequest": obj(props{"name": str(""), "tags": strMap(), "groupId": str(""), "address": str("pin an address of the pool"), "publicKey": str("the device's key"), "generateKey": boolean(),
		"kind": enum("", "site")}),
	"SIMPatchRequest":        obj(props{"name": str(""), "tags": strMap(), "groupId": str("")}),
	"SIMGroupRequest":        obj(props{"groupId": str("\"\" for none")}, "groupId"),
	"SIMTagsRequest":         obj(props{"tags": strMap()}, "tags"),
	"SIMKeyRequest":          obj(props{"publicKey": str(""), "generateKey": boolean(), "next": boolean()}),
	"RequireRotationRequest": obj(props{"within": str("duration")}),
	"WireGuardConfigRequest": obj(props{"generateKey": boolean()}, "generateKey"),
	"GroupSettings": obj(props{"version": integer(), "routes": arr(str("CIDR")), "deviceToDevice": obj(props{"mode": enum("off", "group", "groups"), "groups": arr(str("group name")), "ports": arr(integer())}),
		"devicesMayWriteTags": boolean(), "arcRekeyWithAuthKey": boolean(), "userData": str("at most 8 KB"),
		"security": obj(props{"action": enum("alert", "quarantine", "suspend", "rotate"), "quarantineGroup": str("group name"), "webhookUrl": str("http(s) URL"),
			"webhookSecret": str("write-only: never returned"), "webhookSecretSet": boolean(),
			"allowList": arr(str("CIDR")), "block": boolean(),
			"rotateWithinHours": integer(), "keyMaxAgeDays": integer(), "firstSeen": boolean(),
			"maxBytesPerMinute": integer(), "maxPacketsPerMinute": integer(), "volumeFactor": map[string]any{"type": "number"},
			"checkListeners": boolean(), "listenPorts": arr(integer()), "actOn": arr(str("alert kind"))}),
		"egress": obj(props{"breakout": boolean(), "resolveAllowedOnly": boolean(), "rules": arr(obj(props{"action": enum("allow", "deny"),
			"prefix": str("IPv4 or IPv6 CIDR"), "fqdn": str("name or *.name (allow only)"), "protocol": enum("", "tcp", "udp", "icmp"),
			"ports": str("443 or 8000-8100 (tcp, udp)"), "description": str("")}, "action"))}),
		"mirroring": obj(props{"peers": arr(obj(props{"ipAddress": str("unicast IPv4 or IPv6"), "protocol": enum("gre", "gre-udp"),
			"port": integer(), "enabled": boolean(), "description": str("")}, "ipAddress"))}),
		"redirection": obj(props{"enabled": boolean(), "gatePeerId": str("a Gate peer, the next hop"), "includePlatform": boolean()}),
		"inspection":  obj(props{"enabled": boolean(), "intervalSeconds": integer(), "perSim": boolean(), "webhook": boolean(), "ipfixCollectors": arr(str("IP:port")), "forwardPath": str("a forwarders.http route's path")})}),
	"Group":              obj(props{"id": str(""), "name": str(""), "settings": ref("GroupSettings"), "created": dateTime(), "updated": dateTime()}),
	"GroupCreateRequest": obj(props{"name": str(""), "settings": ref("GroupSettings")}, "name"),
	"GroupPatchRequest":  obj(props{"name": str(""), "settings": ref("GroupSettings")}),
	"AuthKey": obj(props{"id": str(""), "description": str(""), "groupId": str(""), "tags": strMap(), "expires": dateTime(), "maxUses": integer(),
		"uses": integer(), "revoked": boolean(), "created": dateTime()}),
	"AuthKeyCreateRequest": obj(props{"description": str(""), "groupId": str(""), "tags": strMap(), "ttlSeconds": integer(), "maxUses": integer()}),
	"AuthKeySecret":        obj(props{"item": ref("AuthKey"), "secret": str("shown once"), "arcAuthKeyId": str("the key as SORACOM Arc credentials (authKeyId)"), "arcAuthKey": str("the secret as SORACOM Arc credentials (authKey), shown once")}),
	"Token":                obj(props{"id": str(""), "description": str(""), "role": enum("admin", "operator", "viewer"), "created": dateTime(), "expires": dateTime()}),
	"TokenCreateRequest":   obj(props{"role": enum("admin", "operator", "viewer"), "description": str(""), "ttlSeconds": integer()}, "role"),
	"TokenSecret":          obj(props{"item": ref("Token"), "secret": str("shown once")}),
	"Event":                obj(props{"id": integer(), "time": dateTime(), "actor": str(""), "action": str(""), "objectType": str(""), "objectId": str(""), "details": map[string]any{"type": "object"}}),
	"Session":              obj(props{"endpoint": str("host:port"), "gatewayPublicKey": str(""), "address": str("overlay /32"), "address6": str("IPv6 overlay /128 (absent without IPv6)"), "allowedIPs": arr(str("CIDR, both families")), "privateKey": str("only if generateKey")}),
	"BootstrapRequest": obj(props{"authKey": str(""), "publicKey": str(""), "generateKey": boolean(), "name": str(""),
		"keyProof": obj(props{"nonce": str("from POST /api/v1/key-proof/challenge, base64"), "proof": str("base64 HMAC-SHA256; required when publicKey is already registered (docs/control-plane.md)")}, "nonce", "proof")}, "authKey"),
	"CardBootstrapRequest": obj(props{"keyId": str("a key verified with POST /v1/keys/{keyId}/verify"), "publicKey": str("the device's WireGuard public key"), "name": str("the SIM's name on a first bootstrap"),
		"keyProof": obj(props{"nonce": str("from POST /api/v1/key-proof/challenge, base64"), "proof": str("base64 HMAC-SHA256")}, "nonce", "proof")}, "keyId", "publicKey"),
	"KeyChallenge":      obj(props{"nonce": str("32 random bytes, base64; single use"), "serverKey": str("the challenge's ephemeral X25519 public key, base64"), "expires": dateTime()}, "nonce", "serverKey", "expires"),
	"BootstrapResponse": obj(props{"sim": ref("SIM"), "session": ref("Session")}),
	"SIMPage":           page("SIM"),
	"GroupPage":         page("Group"),
	"AuthKeyPage":       page("AuthKey"),
	"TokenPage":         page("Token"),
	"EventPage":         page("Event"),
	"Alert": obj(props{"id": integer(), "time": dateTime(), "actor": str("sim:<id>"), "action": str("device.alert"), "objectType": str("sim"), "objectId": str("the SIM"),
		"details": obj(props{"kind": str(""), "severity": enum("low", "medium", "high"), "detail": str(""), "evidence": map[string]any{"type": "object"}}), "acknowledged": ref("Event")}),
	"AlertPage": page("Alert"),
	"AuditReport": obj(props{"findings": arr(obj(props{"check": str("the check that found it"), "severity": enum("high", "medium", "low"),
		"object": str("SIM, auth key or group id"), "detail": str("")}))}),
}

type props map[string]any

func simProps() props {
	return props{"id": str(""), "kind": enum("", "site"), "imsi": str("99999 + 10 digits; empty for a site"), "name": str(""), "tags": strMap(), "groupId": str(""),
		"status": enum("active", "suspended", "terminated"), "address": str("overlay IPv4"), "address6": str("IPv6 overlay address, the twin of address in the fleet's ULA prefix"), "publicKey": str("base64 WireGuard key"),
		"nextPublicKey": str("announced next key during rotation"), "authKeyId": str("auth key the SIM was bootstrapped with; absent when an operator or a trusted network created it"), "created": dateTime(), "updated": dateTime(),
		"keySet": dateTime(), "rotateBy": dateTime(), "agent": str("the software the device last reported itself as (metadata PUT /v1/subscriber/agent), e.g. wirefleet-agent/v1.4.0"), "agentSeen": dateTime(),
		"connection": obj(props{"online": boolean(), "endpoint": str("the device's current outer address"), "lastHandshake": dateTime(),
			"rxBytes": integer(), "txBytes": integer()})}
}

// withProp returns p plus one property. (Not allOf: with
// additionalProperties false on the base, allOf could never validate.)
func withProp(p props, name string, schema any) props {
	p[name] = schema
	return p
}

func obj(p props, required ...string) map[string]any {
	o := map[string]any{"type": "object", "properties": p, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}
func str(desc string) map[string]any {
	if desc == "" {
		return map[string]any{"type": "string"}
	}
	return map[string]any{"type": "string", "description": desc}
}
func dateTime() map[string]any { return map[string]any{"type": "string", "format": "date-time"} }
func boolean() map[string]any  { return map[string]any{"type": "boolean"} }
func integer() map[string]any  { return map[string]any{"type": "integer"} }
func strMap() map[string]any {
	return map[string]any{"type": "object", "additionalProperties": str("")}
}
func arr(items any) map[string]any    { return map[string]any{"type": "array", "items": items} }
func enum(v ...string) map[string]any { return map[string]any{"type": "string", "enum": v} }
func ref(name string) map[string]any  { return map[string]any{"$ref": "#/components/schemas/" + name} }
func page(item string) map[string]any {
	return obj(props{"items": arr(ref(item)), "next": str("cursor of the next page; absent on the last")}, "items")
}

var pathParam = regexp.MustCompile(`\{([a-zA-Z]+)\}`)

// openAPI renders the OpenAPI 3 document of rts.
func openAPI(rts []route) []byte {
	paths := map[string]map[string]any{}
	errResp := map[string]any{"description": "error", "content": map[string]any{"application/json": map[string]any{"schema": ref("Error")}}}
	for _, rt := range rts {
		op := map[string]any{"summary": rt.summary, "operationId": opID(rt)}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": str("")})
		}
		for _, q := range rt.query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": str("")})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.role == "" {
			op["security"] = []any{}
		} else {
			op["description"] = "Requires role " + string(rt.role) + " or higher."
		}
		if rt.request != "" {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": ref(rt.request)}}}
		}
		ok := map[string]any{"description": "no content"}
		code := "204"
		switch rt.response {
		case "":
		case "text":
			code = "200"
			ok = map[string]any{"description": "wg-quick configuration", "content": map[string]any{"text/plain": map[string]any{"schema": str("")}}}
		default:
			code = "200"
			if rt.method == "POST" && !strings.Contains(rt.path, "/sims/{id}/") && !strings.HasSuffix(rt.path, "/bootstrap") {
				code = "201"
			}
			ok = map[string]any{"description": "ok", "content": map[string]any{"application/json": map[string]any{"schema": ref(rt.response)}}}
		}
		op["responses"] = map[string]any{code: ok, "default": errResp}
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		paths[rt.path][strings.ToLower(rt.method)] = op
	}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "wirefleet control plane", "version": "1", "description": "Fleet of virtual SIMs: SIMs, groups, auth keys, operator tokens, events."},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
		"security": []any{map[string]any{"bearer": []any{}}},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

func opID(rt route) string {
	p := strings.TrimPrefix(rt.path, "/api/v1/")
	p = pathParam.ReplaceAllString(p, "by-$1")
	return strings.ToLower(rt.method) + "-" + strings.ReplaceAll(p, "/", "-")
}
