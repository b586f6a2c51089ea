// SPDX-License-Identifier: Apache-2.0

package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wirefleet/wirefleet/controlplane/store"
	"github.com/wirefleet/wirefleet/fleet"
)

// funcs are the template helpers.
var funcs = template.FuncMap{
	"iso": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"ago":      ago,
	"statuses": func() []string { return []string{"active", "suspended", "terminated"} },
	"roles":    func() []string { return []string{"viewer", "operator", "admin"} },
	"bytes":    anyBytes,
	"tags": func(m map[string]string) []string {
		out := make([]string, 0, len(m))
		for k, v := range m {
			out = append(out, k+"="+v)
		}
		sort.Strings(out)
		return out
	},
	"details": func(m map[string]any) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for i, k := range keys {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%s=%v", k, m[k])
		}
		return b.String()
	},
	// dict passes several values to a shared fragment.
	"dict": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, fmt.Errorf("dict: odd number of arguments")
		}
		m := make(map[string]any, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
			}
			m[k] = kv[i+1]
		}
		return m, nil
	},
	"short": func(s string) string {
		if len(s) > 12 {
			return s[:12] + "…"
		}
		return s
	},
}

// parseTemplates builds one template set per page: the layout, the
// shared fragments, and the page.
func (h *Handler) parseTemplates() error {
	base, err := template.New("").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/fragments.html")
	if err != nil {
		return err
	}
	names, err := fs.Glob(files, "templates/page-*.html")
	if err != nil {
		return err
	}
	h.pages = map[string]*template.Template{}
	for _, n := range names {
		t, err := template.Must(base.Clone()).ParseFS(files, n)
		if err != nil {
			return err
		}
		h.pages[strings.TrimSuffix(strings.TrimPrefix(path.Base(n), "page-"), ".html")] = t
	}
	h.pages["fragments"] = base
	return nil
}

// render writes a whole page (the layout around the page's "content").
func (h *Handler) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	s := sessionOf(r)
	p.Actor, p.CSRF, p.Signed = s.actor, s.csrf, s.secret != ""
	h.execute(w, code, h.pages[name], "layout", p)
}

// fragment writes one named fragment (an htmx or SSE swap).
func (h *Handler) fragmentHTML(name string, data any) (string, error) {
	var b bytes.Buffer
	err := h.pages["fragments"].ExecuteTemplate(&b, name, data)
	return b.String(), err
}

func (h *Handler) execute(w http.ResponseWriter, code int, t *template.Template, name string, data any) {
	// Rendered to a buffer first: a template error becomes a 500, not half a page.
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, name, data); err != nil {
		h.log.Error("console: rendering", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

// ago is a short age ("3 s", "5 min", "2 h", "4 d"); "never" for zero.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%d d ago", int(d.Hours()/24))
	}
}

// anyBytes is humanBytes for the counters' two types (the gateway's
// uint64, the store's int64).
func anyBytes(n any) (string, error) {
	switch v := n.(type) {
	case uint64:
		return humanBytes(v), nil
	case int64:
		return humanBytes(uint64(max(v, 0))), nil
	case int:
		return humanBytes(uint64(max(v, 0))), nil
	}
	return "", fmt.Errorf("bytes: %T is not a count", n)
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// errorText is what an operator is shown for err: the service's own
// message for its errors, a generic one for the rest (logged).
func (h *Handler) errorText(err error) (code int, field, msg string) {
	if err == nil {
		return http.StatusOK, "", ""
	}
	var fe *fleet.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case fleet.CodeForbidden:
			return http.StatusForbidden, fe.Field, fe.Message
		case fleet.CodeNotFound:
			return http.StatusNotFound, fe.Field, fe.Message
		case fleet.CodeConflict, fleet.CodeBadState, fleet.CodeExhausted:
			return http.StatusConflict, fe.Field, fe.Message
		case fleet.CodeUnauthorized:
			return http.StatusUnauthorized, fe.Field, fe.Message
		}
		return http.StatusBadRequest, fe.Field, fe.Message
	}
	if errors.Is(err, store.ErrUnavailable) {
		return http.StatusServiceUnavailable, "", "the fleet database is unavailable; retry shortly"
	}
	h.log.Error("console: internal error", "err", err)
	return http.StatusInternalServerError, "", "internal error"
}

// refused answers a refused form: a denial, a missing object or an outage
// gets a page of its own (h.fail); anything else is the operator's input,
// and again shows the form with the error beside its field.
func (h *Handler) refused(w http.ResponseWriter, r *http.Request, err error, again func(code int, field, msg string)) {
	code, field, msg := h.errorText(err)
	if code == http.StatusForbidden || code == http.StatusNotFound || code >= 500 {
		h.fail(w, r, err)
		return
	}
	again(code, field, msg)
}

// formInt reads a whole number from lo to hi from a form field ("" is
// unset); the error names the field, as the service's do.
func formInt(f url.Values, name, label string, lo, hi int) (n int, set bool, err error) {
	v := strings.TrimSpace(f.Get(name))
	if v == "" {
		return 0, false, nil
	}
	n, err = strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, false, fleet.Errorf(fleet.CodeInvalid, name, "%s: a whole number from %d to %d", label, lo, hi)
	}
	return n, true, nil
}
