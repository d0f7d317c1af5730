package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// Resource is a node of a resource tree, Twisted's web.resource.Resource
// in net/http terms. A request's path is taken one segment at a time:
//
//   - a segment named by PutChild, or returned by Dynamic (Twisted's
//     getChild), leads to that child. A child that is a *Resource goes on
//     taking segments; any other http.Handler is a leaf and receives the
//     rest of the path as its URL path, with the segments taken so far
//     available from ScriptName (SCRIPT_NAME and PATH_INFO, for WSGI).
//   - when no child takes the next segment, or the path ends, the nearest
//     node on the way that has a Handler answers, with the path it was
//     reached by as ScriptName: the longest prefix wins. This is Twisted's
//     DelegatingResource, which lets a WSGI application at the root see
//     everything that no static child takes.
//   - when no node on the way has a Handler, the answer is 404.
type Resource struct {
	// Handler answers for this node and for paths below it that no child
	// takes; nil leaves them to the parent.
	Handler http.Handler
	// Dynamic, if set, is asked for a child that PutChild did not name,
	// with the decoded segment. It returns nil for none.
	Dynamic  func(name string, r *http.Request) http.Handler
	children map[string]http.Handler
}

// PutChild makes child answer for the path segment name (decoded, without
// slashes), replacing any child of that name.
func (n *Resource) PutChild(name string, child http.Handler) {
	if n.children == nil {
		n.children = map[string]http.Handler{}
	}
	n.children[name] = child
}

// Child returns the child put for name, or nil.
func (n *Resource) Child(name string) http.Handler { return n.children[name] }

// Mount places h at prefix, a slash-separated path such as "/api/v1",
// creating the intermediate nodes. Mount("/", h) sets n's own Handler.
// If h is a *Resource its children are kept as they are.
func (n *Resource) Mount(prefix string, h http.Handler) {
	segs := splitPrefix(prefix)
	if len(segs) == 0 {
		n.Handler = h
		return
	}
	node := n
	for _, s := range segs[:len(segs)-1] {
		next, ok := node.Child(s).(*Resource)
		if !ok {
			// A leaf in the way becomes the handler of a new node.
			next = &Resource{Handler: node.Child(s)}
			node.PutChild(s, next)
		}
		node = next
	}
	last := segs[len(segs)-1]
	if existing, ok := node.Child(last).(*Resource); ok {
		if _, isNode := h.(*Resource); !isNode {
			existing.Handler = h // keep the children mounted below
			return
		}
	}
	node.PutChild(last, h)
}

// splitPrefix returns the non-empty segments of a mount prefix.
func splitPrefix(prefix string) []string {
	var segs []string
	for s := range strings.SplitSeq(prefix, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	return segs
}

type scriptNameKey struct{}

// ScriptName returns the decoded path, such as "/api", by which a resource
// tree reached the handler serving r; r.URL.Path is what remains. It is ""
// at the root.
func ScriptName(r *http.Request) string {
	s, _ := r.Context().Value(scriptNameKey{}).(string)
	return s
}

// ServeHTTP implements http.Handler. At the root of a tree, a path with
// dot-segments ("/a/../b", "/a/%2e%2e/b") is first resolved as RFC 3986
// 5.2.4 says ("/b"), so that a mount is chosen by the path the request
// really names and no handler, a proxy: mount above all, is handed a
// path that leaves it.
func (n *Resource) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	base := ScriptName(r)
	rest := r.URL.EscapedPath() // still to take, "/a/b" or ""
	if base == "" {
		if clean, changed := removeDotSegments(rest); changed {
			r = withPath(r, "", clean)
			rest = clean
		}
	}
	taken := "" // decoded segments taken so far
	// The nearest node with a Handler, and where the path stood there.
	var fallback http.Handler
	fbTaken, fbRest := "", rest
	node := n
	for {
		if node.Handler != nil {
			fallback, fbTaken, fbRest = node.Handler, taken, rest
		}
		seg, after, ok := nextSegment(rest)
		if !ok {
			break
		}
		name, err := url.PathUnescape(seg)
		if err != nil {
			break
		}
		child := node.children[name]
		if child == nil && node.Dynamic != nil {
			child = node.Dynamic(name, r)
		}
		if child == nil {
			break
		}
		taken, rest = taken+"/"+name, after
		if next, isNode := child.(*Resource); isNode {
			node = next
			continue
		}
		fallback, fbTaken, fbRest = child, taken, rest
		break
	}
	if fallback == nil {
		Error(w, r, http.StatusNotFound, "")
		return
	}
	if fbTaken == "" {
		fallback.ServeHTTP(w, r)
		return
	}
	fallback.ServeHTTP(w, withPath(r, base+fbTaken, fbRest))
}

// removeDotSegments resolves the "." and ".." segments of an escaped path
// (RFC 3986 5.2.4), percent-encoded dots included, and reports whether
// there were any. ".." at the root stays at the root.
func removeDotSegments(p string) (string, bool) {
	if !strings.Contains(p, ".") && !strings.Contains(p, "%2") {
		return p, false // the common case, at no cost
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	changed := false
	for i, seg := range segs {
		last := i == len(segs)-1
		switch dotSegment(seg) {
		case 1:
			changed = true
			if last {
				out = append(out, "") // "/a/." is "/a/"
			}
		case 2:
			changed = true
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, seg)
		}
	}
	if !changed {
		return p, false
	}
	clean := strings.Join(out, "/")
	if !strings.HasPrefix(clean, "/") {
		clean = "/" + clean
	}
	return clean, true
}

// dotSegment is 1 for a "." segment, 2 for "..", percent-encoded or not,
// and 0 for any other.
func dotSegment(seg string) int {
	if len(seg) == 0 || len(seg) > 6 {
		return 0
	}
	s := strings.ReplaceAll(strings.ReplaceAll(seg, "%2e", "."), "%2E", ".")
	switch s {
	case ".":
		return 1
	case "..":
		return 2
	}
	return 0
}

// nextSegment splits "/seg/more" into "seg" and "/more". It reports false
// at the end of the path and for an empty segment ("/" or "//x").
func nextSegment(p string) (seg, rest string, ok bool) {
	if len(p) < 2 || p[0] != '/' {
		return "", p, false
	}
	p = p[1:]
	i := strings.IndexByte(p, '/')
	if i < 0 {
		return p, "", true
	}
	if i == 0 {
		return "", "/" + p, false
	}
	return p[:i], p[i:], true
}

// withPath returns a shallow copy of r whose URL path is rest (escaped) and
// whose ScriptName is script.
func withPath(r *http.Request, script, rest string) *http.Request {
	r2 := r.WithContext(context.WithValue(r.Context(), scriptNameKey{}, script))
	u := *r.URL
	u.Path, _ = url.PathUnescape(rest)
	u.RawPath = rest
	r2.URL = &u
	return r2
}
