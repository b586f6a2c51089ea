// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package udpbind

import "golang.zx2c4.com/wireguard/conn"

// New is conn.StdNetBind where this package's Linux bind does not run.
func New() conn.Bind { return conn.NewStdNetBind() }
