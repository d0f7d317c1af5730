package web

import (
	"html/template"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

var listingTmpl = template.Must(template.New("listing").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Index of {{.Path}}</title>
<style>{{.Style}}</style></head>
<body><main>
<h1>Index of {{.Path}}</h1>
<div class="scroll"><table>
<tr><th>Name</th><th>Size</th><th>Last modified (UTC)</th></tr>
{{if .Parent}}<tr><td class="name"><a href="../">../</a></td><td class="size"></td><td class="date"></td></tr>
{{end}}{{range .Entries}}<tr><td class="name"><a href="{{.Href}}">{{.Name}}</a></td><td class="size">{{.Size}}</td><td class="date">{{.Modified}}</td></tr>
{{end}}</table></div>
{{if .More}}<p>More entries than the {{.Shown}} shown here are in this directory.</p>
{{end}}
<footer>torsion</footer>
</main></body></html>
`))

type listingEntry struct {
	Name, Href, Size, Modified string
}

// maxListing is the most entries a listing shows: a directory of 200,000
// files once took 2.7 GiB to list.
const maxListing = 10000

// serveListing writes an HTML table of the directory's entries, the first
// maxListing read, saying so when there are more. Names are escaped for
// HTML and for the link; entries are sorted, directories marked with a
// trailing slash.
func serveListing(w http.ResponseWriter, r *http.Request, dir *os.File, reachable func(name string) bool) {
	ents, err := dir.ReadDir(maxListing + 1)
	if err != nil && err != io.EOF {
		Error(w, r, http.StatusInternalServerError, "Cannot read the directory.")
		return
	}
	more := len(ents) > maxListing
	ents = ents[:min(len(ents), maxListing)]
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	data := struct {
		Path    string
		Parent  bool
		Style   template.CSS
		Entries []listingEntry
		More    bool
		Shown   int
	}{Path: ScriptName(r) + r.URL.Path, Style: template.CSS(pageStyle), More: more, Shown: maxListing}
	if data.Path == "" {
		data.Path = "/"
	}
	data.Parent = data.Path != "/"
	for _, e := range ents {
		name := e.Name()
		if e.Type()&os.ModeSymlink != 0 && !reachable(name) {
			continue
		}
		href := (&url.URL{Path: name}).EscapedPath()
		if strings.Contains(name, ":") {
			href = "./" + href // keep "a:b" from reading as a scheme
		}
		ent := listingEntry{Name: name, Href: href}
		if info, err := e.Info(); err == nil {
			ent.Modified = info.ModTime().UTC().Format(time.DateTime)
			if info.Mode().IsRegular() {
				ent.Size = formatSize(info.Size())
			}
		}
		if e.IsDir() {
			ent.Name += "/"
			ent.Href += "/"
		}
		data.Entries = append(data.Entries, ent)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.Method == http.MethodHead {
		return
	}
	listingTmpl.Execute(w, data)
}

func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	units := "KMGTPE"
	div, i := int64(unit), 0
	for m := n / unit; m >= unit && i < len(units)-1; m /= unit {
		div *= unit
		i++
	}
	whole := n / div
	tenth := (n % div) * 10 / div
	return strconv.FormatInt(whole, 10) + "." + strconv.FormatInt(tenth, 10) + " " + units[i:i+1] + "iB"
}
