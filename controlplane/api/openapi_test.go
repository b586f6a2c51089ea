// SPDX-License-Identifier: Apache-2.0

package api

import "testing"

// TestOpenAPISchemasExist checks every schema a route names is defined,
// and every $ref inside the schemas resolves.
func TestOpenAPISchemasExist(t *testing.T) {
	h := &Handler{}
	for _, rt := range h.routes() {
		for _, name := range []string{rt.request, rt.response} {
			if name == "" || name == "text" {
				continue
			}
			if _, ok := schemas[name]; !ok {
				t.Errorf("%s %s names undefined schema %q", rt.method, rt.path, name)
			}
		}
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if r, ok := x["$ref"].(string); ok {
				name := r[len("#/components/schemas/"):]
				if _, ok := schemas[name]; !ok {
					t.Errorf("dangling $ref %s", r)
				}
			}
			for _, c := range x {
				walk(c)
			}
		case props:
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	for _, s := range schemas {
		walk(s)
	}
}
