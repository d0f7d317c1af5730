package web

import (
	"html"
	"strings"
)

// pageStyle is the one stylesheet of the pages torsion makes itself (the
// demo page, directory listings, error pages): inline, so a page needs no
// other request; readable on a phone; light or dark as the reader's
// system is.
const pageStyle = `:root{color-scheme:light dark;--fg:#1d1f24;--bg:#fbfbfa;--mute:#6a6f78;--line:#e3e4e6;--link:#0b57d0;--accent:#8a4b08}
@media (prefers-color-scheme:dark){:root{--fg:#e6e6e3;--bg:#16181c;--mute:#9aa0a8;--line:#2c3036;--link:#8ab4f8;--accent:#f0b46c}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:50rem;margin:0 auto;padding:2.5rem 1.25rem}
h1{font-size:1.6rem;line-height:1.25;margin:0 0 1rem;overflow-wrap:anywhere}
h1 .code{color:var(--accent);margin-right:.4em}
a{color:var(--link)}
code{font:.92em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--line);padding:.1em .35em;border-radius:4px}
ul{padding-left:1.25rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid var(--line);white-space:nowrap}
th{font-weight:600;color:var(--mute);font-size:.85rem;text-transform:uppercase;letter-spacing:.04em}
td.name{white-space:normal;overflow-wrap:anywhere}
td.size{text-align:right;font-variant-numeric:tabular-nums}
td.date{color:var(--mute);font-variant-numeric:tabular-nums}
footer{color:var(--mute);font-size:.85rem;margin-top:2.5rem;border-top:1px solid var(--line);padding-top:.75rem}`

// Page returns a whole HTML page in the style of the pages torsion makes
// itself: title is plain text (escaped here), body is HTML.
func Page(title, body string) string { return page(title, body) }

// page returns a whole HTML page: title (plain text, escaped here) and
// body (HTML).
func page(title, body string) string {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n")
	b.WriteString("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>")
	b.WriteString(html.EscapeString(title))
	b.WriteString("</title>\n<style>")
	b.WriteString(pageStyle)
	b.WriteString("</style></head>\n<body><main>\n")
	b.WriteString(body)
	b.WriteString("\n<footer>torsion</footer>\n</main></body></html>\n")
	return b.String()
}
