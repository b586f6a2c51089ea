// SPDX-License-Identifier: Apache-2.0

package forwarder

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Identity is who a device is, as destinations see it.
type Identity struct {
	SIMID string
	IMSI  string
	Group string // group name, "" when the SIM has none
	// IMEI and MSISDN come from the SIM's tags "imei" and "msisdn" (the
	// platform has neither of its own); they exist for Beam signatures.
	IMEI, MSISDN string
}

// Headers the forwarder adds to HTTP requests it forwards. Any header the
// device sent under these names (or any X-Wirefleet-* / X-Soracom-*) is
// removed first, so a destination can trust them.
const (
	HeaderSIMID     = "X-Wirefleet-Sim-Id"
	HeaderIMSI      = "X-Wirefleet-Imsi"
	HeaderGroup     = "X-Wirefleet-Group"
	HeaderTimestamp = "X-Wirefleet-Timestamp" // Unix milliseconds
	// HeaderSignature is "v1=" and the hex HMAC-SHA256 of CanonicalString
	// keyed with the route's secret.
	HeaderSignature = "X-Wirefleet-Signature"
)

// SignatureVersion starts every canonical string.
const SignatureVersion = "wirefleet-signature-v1"

// CanonicalString is what a route's signature covers, one item a line
// (joined with "\n", no trailing newline):
//
//	wirefleet-signature-v1
//	<timestamp, Unix milliseconds>
//	<SIM id>
//	<IMSI>
//	<group name>
//	<method: the HTTP method; "TCP" for a first line>
//	<target: path and query sent to the destination; host:port for a first line>
//	<hex SHA-256 of the body (of nothing, for a first line)>
//
// A receiver recomputes it from the request and the X-Wirefleet-* headers
// and compares HMACs in constant time; checking the timestamp's age
// bounds replays.
func CanonicalString(id Identity, ms int64, method, target string, body []byte) string {
	sum := sha256.Sum256(body)
	return strings.Join([]string{SignatureVersion, strconv.FormatInt(ms, 10), id.SIMID, id.IMSI, id.Group, method, target, hex.EncodeToString(sum[:])}, "\n")
}

// Sign returns the hex HMAC-SHA256 of msg keyed with secret.
func Sign(secret, msg string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// Beam-compatible headers (SORACOM Beam's names, version 20151001).
const (
	BeamHeaderTimestamp        = "X-Soracom-Timestamp"
	BeamHeaderSignature        = "X-Soracom-Signature"
	BeamHeaderSignatureVersion = "X-Soracom-Signature-Version"
	BeamSignatureVersion       = "20151001"
)

// beamValue returns the identity value of a Beam field (fleet.BeamFields).
func (id Identity) beamValue(field string) string {
	switch field {
	case "imei":
		return id.IMEI
	case "imsi":
		return id.IMSI
	case "msisdn":
		return id.MSISDN
	case "sim-id":
		return id.SIMID
	}
	return ""
}

// BeamSignature returns the SORACOM Beam-compatible signature and the
// headers it covers: hex(SHA-256(secret + "x-soracom-<field>=" + value …
// + "x-soracom-timestamp=" + ms)), the enabled fields taken in Beam's fixed
// order (imei, imsi, msisdn, sim-id) whatever order they are listed in.
func BeamSignature(secret string, fields []string, id Identity, ms int64) (sig string, headers [][2]string) {
	var b strings.Builder
	b.WriteString(secret)
	for _, f := range []string{"imei", "imsi", "msisdn", "sim-id"} {
		if !contains(fields, f) {
			continue
		}
		v := id.beamValue(f)
		b.WriteString("x-soracom-" + f + "=" + v)
		headers = append(headers, [2]string{"X-Soracom-" + beamHeaderName(f), v})
	}
	ts := strconv.FormatInt(ms, 10)
	b.WriteString("x-soracom-timestamp=" + ts)
	sum := sha256.Sum256([]byte(b.String()))
	headers = append(headers, [2]string{BeamHeaderTimestamp, ts})
	return hex.EncodeToString(sum[:]), headers
}

func beamHeaderName(f string) string {
	switch f {
	case "imei":
		return "Imei"
	case "imsi":
		return "Imsi"
	case "msisdn":
		return "Msisdn"
	}
	return "Sim-Id"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
