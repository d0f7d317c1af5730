package main

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// printedConfig returns torsion's options in effect with nothing set, as
// --print-config prints them: by plugin ("" for the global ones), the
// option's name, its value as printed (strings unquoted).
func printedConfig(t *testing.T, plugins ...string) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, plugin := range plugins {
		text, code := run(t, "--print-config", plugin)
		if code != 0 {
			t.Fatalf("--print-config %s: exit %d\n%s", plugin, code, text)
		}
		section := ""
		sc := bufio.NewScanner(strings.NewReader(text))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if strings.HasPrefix(line, "[") {
				section = strings.Trim(line, "[]")
				continue
			}
			k, v, ok := strings.Cut(line, " = ")
			if !ok {
				continue
			}
			if out[section] == nil {
				out[section] = map[string]string{}
			}
			out[section][k] = strings.Trim(v, `"`)
		}
	}
	return out
}

// amount reads "30 s", "8 KiB", "1m0s", "65536" or "128" as one number
// (seconds or bytes), or reports that s is none.
func amount(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		return d.Seconds(), true
	}
	m := regexp.MustCompile(`^([0-9][0-9,.]*)\s*(s|KiB|MiB|GiB)?\b`).FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseFloat(strings.ReplaceAll(m[1], ",", ""), 64)
	if err != nil {
		return 0, false
	}
	return n * map[string]float64{"": 1, "s": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m[2]], true
}

// TestReadmeOptions holds README.md to what torsion does: each option in
// its option tables (the WSGI table, the global options) is one torsion
// has, and each default in its Limits table is the option's default, as
// --print-config shows it ("30 s" for 30s, "64 KiB" for 65536); a default
// changed in the code and not in the README fails here.
func TestReadmeOptions(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	config := printedConfig(t, "web", "dns", "conch", "mail")
	help, _ := run(t, "--help") // the options --print-config leaves out: --config, --print-config, --check-config
	option := regexp.MustCompile("`(?:([a-z]+) )?--([a-z0-9-]+)")
	section, checked := "", 0
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "### ") {
			section = line
			continue
		}
		if !strings.HasPrefix(line, "| `") && !strings.HasPrefix(line, "| ") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		switch {
		case section == "### Global options" || strings.HasPrefix(section, "### `torsion web --wsgi`"):
			scope := map[bool]string{true: "", false: "web"}[section == "### Global options"]
			for _, m := range option.FindAllStringSubmatch(cells[0], -1) {
				if _, ok := config[scope][m[2]]; !ok && !(scope == "" && strings.Contains(help, "--"+m[2]+" ")) {
					t.Errorf("README %s: --%s is no option of torsion %s", section, m[2], scope)
				}
				checked++
			}
		case section == "### Limits" && len(cells) == 4:
			opts := option.FindAllStringSubmatch(cells[1], -1)
			values := strings.Split(cells[2], ", ")
			for i, m := range opts {
				plugin := m[1]
				if plugin == "" {
					plugin = "web"
				}
				got, ok := config[plugin][m[2]]
				if !ok {
					t.Errorf("README Limits: %s --%s is no option", plugin, m[2])
					continue
				}
				if i >= len(values) {
					t.Errorf("README Limits: no default for %s --%s in %q", plugin, m[2], cells[2])
					continue
				}
				want, isAmount := amount(values[i])
				have, _ := amount(got)
				switch {
				case isAmount && want != have, !isAmount && strings.Contains(values[i], ":") && values[i] != got:
					t.Errorf("README Limits: %s --%s defaults to %q, the README says %q", plugin, m[2], got, values[i])
				}
				checked++
			}
		}
	}
	if checked < 40 {
		t.Errorf("checked %d options of the README's tables; its tables moved?", checked)
	}
}
