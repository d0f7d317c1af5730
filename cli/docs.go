package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// WriteDocs writes what a package installs beside the binary, made from
// the command definitions (the registered plugins' included): a man page
// per command into man (PROG.1, PROG-web.1 ...), dated date, and PROG's
// completions for bash, zsh and fish into completions (PROG.bash, _PROG,
// PROG.fish), which ask the binary itself what to complete.
func WriteDocs(prog, man, completions string, date time.Time) error {
	root := newRoot(context.Background(), prog, &globals{}, io.Discard, io.Discard)
	root.DisableAutoGenTag = true // the date is in the header; no build-time line
	for _, dir := range []string{man, completions} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	header := &doc.GenManHeader{Section: "1", Date: &date, Source: Version(prog), Manual: prog + " manual"}
	if err := doc.GenManTree(root, header, man); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	for name, gen := range map[string]func(*cobra.Command, string) error{
		prog + ".bash": func(c *cobra.Command, f string) error { return c.GenBashCompletionFileV2(f, true) },
		"_" + prog:     (*cobra.Command).GenZshCompletionFile,
		prog + ".fish": func(c *cobra.Command, f string) error { return c.GenFishCompletionFile(f, true) },
	} {
		if err := gen(root, filepath.Join(completions, name)); err != nil {
			return fmt.Errorf("completion %s: %w", name, err)
		}
	}
	return nil
}
