// Package web is torsion's resource tree, Twisted's twisted.web.resource
// done as http.Handlers: mounts (Resource), virtual hosts (VHosts), static
// files with directory listings, the reverse proxy, forwarded headers from
// trusted proxies (ProxyHeaders), error pages, the demo page and the access
// log in the combined format. Package httpserver serves the tree.
package web
