// Command torsion runs network servers, like Twisted's twistd: "torsion web"
// serves files and applications, "torsion echo" runs the echo protocol, and
// "torsion --help" lists every plugin.
package main

import (
	"os"

	"github.com/torsion-server/torsion/cli"
	_ "github.com/torsion-server/torsion/plugins/standard"
	"github.com/torsion-server/torsion/sshserver"
)

func main() {
	if os.Getenv(sshserver.SFTPServerEnv) != "" {
		// Started by torsion conch, as a user, to serve that user's
		// files over SFTP.
		os.Exit(sshserver.ServeSFTPStdio())
	}
	cli.Main()
}
