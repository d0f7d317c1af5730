// Command gendocs writes torsion's man pages and shell completions, made
// from its command definitions, for a package (scripts/deb):
//
//	go run ./internal/gendocs -man DIR -completions DIR [-date UNIX]
//
// The date in the man pages is -date, by default $SOURCE_DATE_EPOCH, so
// that two runs on one commit write the same bytes.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/torsion-server/torsion/cli"
	_ "github.com/torsion-server/torsion/plugins/standard"
)

func main() {
	man := flag.String("man", "", "write the man pages to `DIR`")
	completions := flag.String("completions", "", "write the shell completions to `DIR`")
	date := flag.Int64("date", 0, "the man pages' date, in seconds since 1970 (default $SOURCE_DATE_EPOCH)")
	flag.Parse()
	if *man == "" || *completions == "" {
		flag.Usage()
		os.Exit(2)
	}
	if *date == 0 {
		*date, _ = strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
	}
	if err := cli.WriteDocs("torsion", *man, *completions, time.Unix(*date, 0).UTC()); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}
