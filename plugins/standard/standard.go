// Package standard registers torsion's standard plugins. Import it for its
// side effects, as cmd/torsion does:
//
//	import _ "github.com/torsion-server/torsion/plugins/standard"
package standard

import (
	_ "github.com/torsion-server/torsion/plugins/conchplugin"   // torsion conch
	_ "github.com/torsion-server/torsion/plugins/dnsplugin"     // torsion dns
	_ "github.com/torsion-server/torsion/plugins/echoserver"    // torsion echo
	_ "github.com/torsion-server/torsion/plugins/mailplugin"    // torsion mail
	_ "github.com/torsion-server/torsion/plugins/procmonplugin" // torsion procmon
	_ "github.com/torsion-server/torsion/plugins/webserver"     // torsion web
)
