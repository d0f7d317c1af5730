package web

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// StaticOptions configures a Static handler.
type StaticOptions struct {
	// Index names the files served for a directory, tried in order;
	// nil means "index.html".
	Index []string
	// NoListing answers 403 for a directory without an index file instead
	// of listing its contents.
	NoListing bool
	// FollowSymlinks serves symbolic links that point outside the root.
	// Links that stay inside the root are always followed.
	FollowSymlinks bool
	// CacheFileSize is the largest file kept in memory (default 64 KiB);
	// CacheSize bounds the memory used in all (default 64 MiB). A negative
	// CacheSize turns the cache off.
	CacheFileSize, CacheSize int64
	// CacheControl, if set, is sent as the Cache-Control of every file.
	CacheControl string
	// Precompressed serves FILE.br or FILE.gz, when present beside FILE,
	// to clients that accept that encoding, with Content-Encoding set and
	// FILE's content type.
	Precompressed bool
}

// Static serves the files under a directory, Twisted's static.File. It
// answers GET and HEAD with conditional and range support (through
// http.ServeContent), serves an index file or a listing for directories and
// never reads outside its root: ".." segments, encoded slashes, backslashes,
// NUL bytes and symbolic links leading out of the root are all refused.
//
// The request's URL path is taken relative to the root; mount Static under
// a prefix with a Resource (or http.StripPrefix).
type Static struct {
	dir   string
	root  *os.Root
	files fileSystem // root, or linkFollower(dir) with FollowSymlinks
	opts  StaticOptions
	cache *fileCache
	plain plainFiles
	// hits and misses count the files served from the cache and read
	// from disk (CacheCounts).
	hits, misses atomic.Uint64
}

// CacheCounts reports how many files were served from memory and how many
// were read from disk.
func (s *Static) CacheCounts() (hits, misses uint64) { return s.hits.Load(), s.misses.Load() }

// plainFiles remembers, for a second each, the files found to have no
// precompressed variant, so that serving one costs a stat of the file,
// not also one for each variant it lacks (they were most of the system
// time of a small file). A variant made beside a file is served within a
// second of appearing.
type plainFiles struct {
	mu    sync.RWMutex
	until map[string]int64 // rel -> UnixNano
}

// plainFor is how long a file found to have no variant is taken to have
// none; plainMax bounds how many files are remembered.
const (
	plainFor = int64(time.Second)
	plainMax = 4096
)

func (p *plainFiles) known(rel string, now int64) bool {
	p.mu.RLock()
	until, ok := p.until[rel]
	p.mu.RUnlock()
	return ok && now < until
}

func (p *plainFiles) remember(rel string, now int64) {
	p.mu.Lock()
	if p.until == nil || len(p.until) >= plainMax {
		p.until = make(map[string]int64)
	}
	p.until[rel] = now + plainFor
	p.mu.Unlock()
}

// NewStatic returns a handler serving dir. It fails if dir is not a
// readable directory.
func NewStatic(dir string, opts StaticOptions) (*Static, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("static directory: %w", err)
	}
	if opts.Index == nil {
		opts.Index = []string{"index.html"}
	}
	s := &Static{dir: abs, root: root, files: root, opts: opts}
	if opts.FollowSymlinks {
		s.files = linkFollower(abs)
	}
	if opts.CacheSize >= 0 {
		s.cache = newFileCache(cmp.Or(opts.CacheFileSize, 64<<10), cmp.Or(opts.CacheSize, 64<<20))
	}
	return s, nil
}

// Dir returns the absolute path of the root directory.
func (s *Static) Dir() string { return s.dir }

// Close releases the root directory.
func (s *Static) Close() error { return s.root.Close() }

// errBadPath marks request paths that are malformed rather than missing.
var errBadPath = errors.New("invalid URL path")

// cleanPath turns a request path into a slash-separated path relative to the
// root ("." for the root itself). It refuses what could name something
// outside the root or what no file can be called.
func cleanPath(r *http.Request) (string, error) {
	p := r.URL.Path
	if strings.ContainsRune(p, 0) {
		return "", errBadPath
	}
	if strings.Contains(r.URL.RawPath, "%2") && strings.Contains(strings.ToLower(r.URL.RawPath), "%2f") {
		// An encoded slash would be part of a name; no file is called that.
		return "", fs.ErrNotExist
	}
	if strings.ContainsRune(p, '\\') {
		return "", fs.ErrNotExist
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == ".." {
			return "", errBadPath
		}
	}
	rel := strings.TrimPrefix(path.Clean("/"+p), "/")
	if rel == "" {
		rel = "."
	}
	return rel, nil
}

// ServeHTTP implements http.Handler.
func (s *Static) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		Error(w, r, http.StatusMethodNotAllowed, "")
		return
	}
	rel, err := cleanPath(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	fi, err := s.stat(rel)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	switch {
	case fi.Mode().IsRegular() && (strings.HasSuffix(r.URL.Path, "/") || strings.HasSuffix(r.URL.Path, "/.")):
		// FILE/ names a directory, which a file is not: 404, as nginx,
		// Apache and Twisted answer.
		Error(w, r, http.StatusNotFound, "")
	case fi.Mode().IsRegular():
		s.serveFile(w, r, rel, fi)
	case !fi.IsDir():
		Error(w, r, http.StatusForbidden, "")
	case !strings.HasSuffix(r.URL.Path, "/"):
		redirectSlash(w, r)
	default:
		s.serveDir(w, r, rel)
	}
}

func (s *Static) serveDir(w http.ResponseWriter, r *http.Request, rel string) {
	for _, name := range s.opts.Index {
		p := path.Join(rel, name)
		if fi, err := s.stat(p); err == nil && fi.Mode().IsRegular() {
			s.serveFile(w, r, p, fi)
			return
		}
	}
	if s.opts.NoListing {
		Error(w, r, http.StatusForbidden, "Directory listing is disabled.")
		return
	}
	d, err := s.open(rel)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer d.Close()
	serveListing(w, r, d, func(name string) bool {
		// Only what a request could reach: a link that leads out of the
		// root (os.Root refuses it) would be a 404.
		_, err := s.stat(path.Join(rel, name))
		return err == nil
	})
}

// serveFile serves a regular file: from the cache when it is small,
// else with sendfile through http.ServeContent.
func (s *Static) serveFile(w http.ResponseWriter, r *http.Request, rel string, fi fs.FileInfo) {
	h := w.Header()
	if s.opts.CacheControl != "" {
		h.Set("Cache-Control", s.opts.CacheControl)
	}
	if s.opts.Precompressed {
		rel, fi = s.variant(h, r, rel, fi)
	}
	if e := s.cache.get(rel, fi); e != nil {
		s.hits.Add(1)
		serveCached(w, r, e)
		return
	}
	s.misses.Add(1)
	f, err := s.open(rel)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer f.Close()
	// Describe the file we opened, which may differ from the one stat saw.
	if fi, err = f.Stat(); err != nil || !fi.Mode().IsRegular() {
		Error(w, r, http.StatusNotFound, "")
		return
	}
	if s.cache.fits(fi.Size()) {
		data := make([]byte, fi.Size())
		if _, err := io.ReadFull(f, data); err == nil {
			serveCached(w, r, s.cache.put(rel, fi, data))
			return
		}
		f.Seek(0, io.SeekStart)
	}
	if _, ok := h["Etag"]; !ok {
		h.Set("Etag", etag(fi))
	}
	serveContent(w, r, fi.Name(), fi.ModTime(), f)
}

// encodings are the precompressed variants Static looks for, best first.
var encodings = []struct{ name, ext string }{{"br", ".br"}, {"gzip", ".gz"}}

// variant returns the precompressed variant of rel that the client accepts
// and sets the headers for it, or returns rel and fi unchanged.
func (s *Static) variant(h http.Header, r *http.Request, rel string, fi fs.FileInfo) (string, fs.FileInfo) {
	ctype := mime.TypeByExtension(path.Ext(rel))
	if ctype == "" {
		return rel, fi // its type could only be sniffed from the original
	}
	now := time.Now().UnixNano()
	if s.plain.known(rel, now) {
		return rel, fi
	}
	ae := r.Header.Values("Accept-Encoding")
	chosen, varies := "", false
	outRel, outFI := rel, fi
	for _, enc := range encodings {
		vfi, err := s.stat(rel + enc.ext)
		if err != nil || !vfi.Mode().IsRegular() {
			continue
		}
		// The answer depends on Accept-Encoding, whichever it is: a
		// cache must not give this one to a client that asks otherwise.
		varies = true
		if chosen == "" && acceptsEncoding(ae, enc.name) {
			chosen, outRel, outFI = enc.name, rel+enc.ext, vfi
		}
	}
	if varies {
		h.Add("Vary", "Accept-Encoding")
	} else {
		s.plain.remember(rel, now)
	}
	if chosen != "" {
		h.Set("Content-Encoding", chosen)
		h.Set("Content-Type", ctype)
	}
	return outRel, outFI
}

// acceptsEncoding reports whether Accept-Encoding values accept coding
// with a q-value above 0, by name or by "*".
func acceptsEncoding(values []string, coding string) bool {
	star := false
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(item, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name != coding && name != "*" {
				continue
			}
			ok := true
			for p := range strings.SplitSeq(params, ";") {
				if k, q, found := strings.Cut(strings.TrimSpace(p), "="); found && strings.EqualFold(k, "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(q), 64)
					ok = err == nil && f > 0
				}
			}
			if name == coding {
				return ok
			}
			star = ok
		}
	}
	return star
}

// writerOnly hides the ReadFrom of the writer it wraps, so that io.Copy
// hands a cached body to Write in one piece and it leaves with the headers.
type writerOnly struct{ http.ResponseWriter }

// htmlErrors gives the error answers of http.ServeContent (416, 412 and
// the like, in plain text) torsion's HTML error page.
type htmlErrors struct {
	http.ResponseWriter
	r      *http.Request
	failed bool
}

func (e *htmlErrors) WriteHeader(code int) {
	if code >= 400 && !e.failed {
		e.failed = true
		Error(e.ResponseWriter, e.r, code, "")
		return
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *htmlErrors) Write(p []byte) (int, error) {
	if e.failed {
		return len(p), nil // ServeContent's text, replaced by the page
	}
	return e.ResponseWriter.Write(p)
}

// ReadFrom keeps sendfile for the bodies that go out.
func (e *htmlErrors) ReadFrom(src io.Reader) (int64, error) {
	if e.failed {
		return io.Copy(io.Discard, src)
	}
	return io.Copy(e.ResponseWriter, src)
}

// serveContent is http.ServeContent with torsion's error pages. A Range
// of many parts, or of parts that overlap, is ignored and the whole file
// served, as Apache does past its MaxRanges: http.ServeContent would
// answer 9,000 copies of one range with a 206 of 9,000 parts.
func serveContent(w http.ResponseWriter, r *http.Request, name string, mod time.Time, content io.ReadSeeker) {
	rg := r.Header.Get("Range")
	if rg != "" && !strings.HasPrefix(rg, "bytes=") || strings.IndexByte(rg, ',') >= 0 && !fairRanges(rg, content) {
		// A unit other than bytes is ignored (RFC 9110 14.2: 200, the
		// whole file), where http.ServeContent answers 416.
		r2 := *r
		r2.Header = r.Header.Clone()
		r2.Header.Del("Range")
		r = &r2
	}
	http.ServeContent(&htmlErrors{ResponseWriter: w, r: r}, r, name, mod, content)
}

// maxRanges is the most parts a Range may ask for.
const maxRanges = 16

// fairRanges reports whether a Range header of several parts asks for at
// most maxRanges parts, none overlapping another, of content. One it
// cannot parse is left to http.ServeContent (which answers 416).
func fairRanges(header string, content io.ReadSeeker) bool {
	specs, ok := strings.CutPrefix(header, "bytes=")
	if !ok {
		return true
	}
	parts := strings.Split(specs, ",")
	if len(parts) > maxRanges {
		return false
	}
	size, err := content.Seek(0, io.SeekEnd)
	if err != nil {
		return true
	}
	if _, err := content.Seek(0, io.SeekStart); err != nil {
		return true
	}
	type span struct{ start, end int64 }
	var spans []span
	for _, p := range parts {
		a, b, ok := strings.Cut(strings.TrimSpace(p), "-")
		if !ok {
			return true
		}
		var sp span
		switch {
		case a == "": // the last b bytes
			n, err := strconv.ParseInt(b, 10, 64)
			if err != nil {
				return true
			}
			sp = span{max(size-n, 0), size - 1}
		default:
			start, err := strconv.ParseInt(a, 10, 64)
			if err != nil {
				return true
			}
			sp = span{start, size - 1}
			if b != "" {
				end, err := strconv.ParseInt(b, 10, 64)
				if err != nil {
					return true
				}
				sp.end = min(end, size-1)
			}
		}
		spans = append(spans, sp)
	}
	slices.SortFunc(spans, func(x, y span) int { return cmp.Compare(x.start, y.start) })
	for i := 1; i < len(spans); i++ {
		if spans[i].start <= spans[i-1].end {
			return false
		}
	}
	return true
}

func serveCached(w http.ResponseWriter, r *http.Request, e *cachedFile) {
	h := w.Header()
	if _, ok := h["Etag"]; !ok {
		h["Etag"] = e.etagV
	}
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = e.ctypeV
	}
	if plainGet(r) && len(h["Content-Encoding"]) == 0 && !e.modTime.IsZero() && e.modTime.Unix() != 0 {
		// The whole file, as http.ServeContent would answer: the
		// common request, without its allocations and formatting.
		h["Accept-Ranges"] = acceptRanges
		h["Last-Modified"] = e.lastModV
		h["Content-Length"] = e.lengthV
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(e.data)
		}
		return
	}
	serveContent(writerOnly{w}, r, "", e.modTime, bytes.NewReader(e.data))
}

var acceptRanges = []string{"bytes"}

// plainGet reports whether r is a GET or HEAD that asks for the whole
// representation unconditionally: no range, no precondition.
func plainGet(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	for _, k := range [...]string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if _, ok := r.Header[k]; ok {
			return false
		}
	}
	return true
}

// fileSystem opens and describes paths relative to a root. *os.Root is
// one, refusing links that lead out of the root; linkFollower follows them.
type fileSystem interface {
	OpenFile(name string, flag int, perm os.FileMode) (*os.File, error)
	Stat(name string) (fs.FileInfo, error)
}

// linkFollower is a directory whose symbolic links are followed anywhere.
type linkFollower string

func (d linkFollower) OpenFile(name string, flag int, perm os.FileMode) (*os.File, error) {
	return os.OpenFile(filepath.Join(string(d), filepath.FromSlash(name)), flag, perm)
}

func (d linkFollower) Stat(name string) (fs.FileInfo, error) {
	return os.Stat(filepath.Join(string(d), filepath.FromSlash(name)))
}

// stat describes a path relative to the root, following links as open does.
func (s *Static) stat(rel string) (fs.FileInfo, error) { return s.files.Stat(rel) }

// open opens a path relative to the root, for reading.
func (s *Static) open(rel string) (*os.File, error) { return s.files.OpenFile(rel, openFlags, 0) }

// openFlags opens files for reading. O_NONBLOCK, which a regular file or a
// directory ignores, spares the four fcntl calls with which Go would make
// the descriptor non-blocking and back again around its vain attempt to
// add it to the network poller; and a FIFO put in a file's place between
// stat and open cannot block the open.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK

func (s *Static) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errBadPath):
		Error(w, r, http.StatusBadRequest, "Invalid URL path.")
	case errors.Is(err, fs.ErrPermission):
		Error(w, r, http.StatusForbidden, "")
	default:
		// Missing files, and links that leave the root, which os.Root
		// refuses: from outside, those look the same.
		Error(w, r, http.StatusNotFound, "")
	}
}

// etag is a strong validator built from the modification time and size,
// as nginx makes it.
func etag(fi fs.FileInfo) string {
	b := make([]byte, 0, 32)
	b = append(b, '"')
	b = strconv.AppendInt(b, fi.ModTime().UnixNano(), 16)
	b = append(b, '-')
	b = strconv.AppendInt(b, fi.Size(), 16)
	b = append(b, '"')
	return string(b)
}

func redirectSlash(w http.ResponseWriter, r *http.Request) {
	// Redirect relative to the last segment of the path the client sent,
	// so a prefix that a parent handler stripped is kept.
	p := r.URL.EscapedPath()
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
		p = u.EscapedPath()
	}
	target := path.Base(p) + "/"
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	// Set Location ourselves: http.Redirect would resolve it against the
	// stripped path.
	w.Header().Set("Location", target)
	Error(w, r, http.StatusMovedPermanently, "The resource moved to "+target+".")
}
