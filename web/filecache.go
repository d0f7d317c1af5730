package web

import (
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// fileCache holds the contents of small files, so that serving one costs a
// single stat (to check it has not changed) instead of open, fstat, read or
// sendfile, and close; the body then leaves in the same write as the
// headers. bench/static measures the difference on 1 KiB files.
//
// An entry is used only while the file's size, modification time and inode
// match, so a changed or replaced file is never served stale.
type fileCache struct {
	maxFile  int64 // largest file kept
	maxTotal int64 // bytes kept in all

	mu      sync.RWMutex
	total   int64
	entries map[string]*cachedFile
}

type cachedFile struct {
	data    []byte
	modTime time.Time
	ino     uint64
	etag    string
	ctype   string
	// The header values of a whole 200 response, made once: each
	// request's header map gets these slices (len == cap, so an Add
	// copies rather than writes into them).
	etagV, ctypeV, lengthV, lastModV []string
}

func newFileCache(maxFile, maxTotal int64) *fileCache {
	return &fileCache{maxFile: maxFile, maxTotal: maxTotal, entries: map[string]*cachedFile{}}
}

// get returns the entry for rel if fi still describes it.
func (c *fileCache) get(rel string, fi fs.FileInfo) *cachedFile {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	e := c.entries[rel]
	c.mu.RUnlock()
	if e == nil || int64(len(e.data)) != fi.Size() || !e.modTime.Equal(fi.ModTime()) || e.ino != inode(fi) {
		return nil
	}
	return e
}

// fits reports whether a file of this size is worth caching.
func (c *fileCache) fits(size int64) bool { return c != nil && size <= c.maxFile }

// put stores data for rel, evicting entries at random to stay in bounds.
func (c *fileCache) put(rel string, fi fs.FileInfo, data []byte) *cachedFile {
	e := &cachedFile{data: data, modTime: fi.ModTime(), ino: inode(fi), etag: etag(fi), ctype: contentType(rel, data)}
	e.etagV, e.ctypeV = []string{e.etag}, []string{e.ctype}
	e.lengthV = []string{strconv.Itoa(len(data))}
	e.lastModV = []string{e.modTime.UTC().Format(http.TimeFormat)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.entries[rel]; old != nil {
		c.total -= int64(len(old.data))
		delete(c.entries, rel)
	}
	for k, v := range c.entries { // map order is random: random eviction
		if c.total+int64(len(data)) <= c.maxTotal {
			break
		}
		c.total -= int64(len(v.data))
		delete(c.entries, k)
	}
	if c.total+int64(len(data)) <= c.maxTotal {
		c.entries[rel] = e
		c.total += int64(len(data))
	}
	return e
}

func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// contentType is what http.ServeContent would choose: by extension, else
// by sniffing the first 512 bytes.
func contentType(name string, data []byte) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return http.DetectContentType(data[:min(len(data), 512)])
}
