// Command torsion runs network servers, like Twisted's twistd: "torsion web"
// serves files and applications, "torsion echo" runs the echo protocol, and
// "torsion --help" lists every plugin.
package main

import (
	"github.com/torsion-server/torsion/cli"
	_ "github.com/torsion-server/torsion/plugins/standard"
)

func main() { cli.Main() }
