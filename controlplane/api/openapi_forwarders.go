// SPDX-License-Identifier: Apache-2.0

package api

// The forwarders part of the GroupSettings schema, added here so that the
// shared schema table stays untouched.
func init() {
	secret := func(what string) map[string]any {
		return str("write-only " + what + ": never returned; omit to keep the stored one")
	}
	cred := obj(props{"type": enum("bearer", "basic", "header"), "header": str("header name, for type header"), "username": str("for type basic"),
		"value": secret("token, password or header value"), "valueSet": boolean()})
	fwd := obj(props{
		"http": arr(obj(props{"pathPrefix": str("requests to 100.127.127.100:8888 under this path"), "url": str("http(s) destination"),
			"secret": secret("HMAC-SHA256 signature secret"), "secretSet": boolean(),
			"beamSignature": obj(props{"fields": arr(enum("imei", "imsi", "msisdn", "sim-id")), "secret": secret("Beam pre-shared key"), "secretSet": boolean()}),
			"credential":    cred, "caPem": str("CA certificates (PEM) trusted for the destination")})),
		"tcp": obj(props{"url": str("tls://host:port or http(s) URL"), "secret": secret("HMAC-SHA256 signature secret"), "secretSet": boolean(),
			"firstLineIdentity": boolean(), "credential": cred, "caPem": str("")}),
		"udp": obj(props{"url": str("http(s) URL"), "secret": secret("HMAC-SHA256 signature secret"), "secretSet": boolean(), "credential": cred, "caPem": str("")}),
		"mqtt": obj(props{"broker": str("host:port"), "tls": boolean(), "caPem": str(""), "username": str(""), "password": secret("broker password"), "passwordSet": boolean(),
			"clientId": str("template: {imsi}, {simId}, {group}"), "topicTemplate": str("template holding {topic} once: {imsi}, {simId}, {group}")}),
	})
	schemas["GroupSettings"].(map[string]any)["properties"].(props)["forwarders"] = fwd
}
