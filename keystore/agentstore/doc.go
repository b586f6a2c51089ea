// SPDX-License-Identifier: Apache-2.0

// Package agentstore keeps a WireGuard static key in a separate process, a
// key agent, and uses it over a Unix socket. The agent can be
// `wirefleet-agent keyd` over a PKCS#11 token, or a vendor's daemon wrapping
// an SDK (SE050 Plug&Trust, TPM-sealed keys) that the tunnel process should
// not link.
//
// Client is the keystore.Store side; Server (and Serve) the agent side. The
// protocol is line-based ASCII, one request and one response per line,
// documented in docs/keystores.md:
//
//	version                         → ok wirefleet-keyd/1
//	public-key <slot>               → ok <base64 public key>
//	dh <slot> <purpose> <base64>    → ok <base64 DH result>
//	generate <slot>                 → ok <base64 public key>
//	delete <slot>                   → ok
//	(any)                           → err <code> <message>
//
// The agent serves only the UIDs its Policy allows, checked with
// SO_PEERCRED (the kernel's record of the connecting process), and can be
// initiator-only: it then refuses responder-es, so strangers' initiations
// never reach the key.
package agentstore
