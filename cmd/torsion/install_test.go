package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// These tests install torsion as its users do (README's "Install"): the
// release binaries of scripts/release, the wheels of scripts/wheel
// installed with pip into a virtualenv.

// repo is the checkout the tests run in.
const repo = "../.."

// dpkgMu lets one test at a time install the package: they would meet
// on dpkg's lock, and on /usr/bin/torsion.
var dpkgMu sync.Mutex

// wheelPlatforms are the platforms a wheel is built for, with what its
// WHEEL file tags it and the machine its binary must be for.
var wheelPlatforms = []struct {
	goos, goarch string
	tags         []string
	machine      string // elf.Machine or macho.Cpu, as String() says it
}{
	{"linux", "amd64", []string{"manylinux_2_17_x86_64", "manylinux2014_x86_64", "musllinux_1_2_x86_64"}, "EM_X86_64"},
	{"linux", "arm64", []string{"manylinux_2_17_aarch64", "manylinux2014_aarch64", "musllinux_1_2_aarch64"}, "EM_AARCH64"},
	{"darwin", "amd64", []string{"macosx_12_0_x86_64"}, "CpuAmd64"},
	{"darwin", "arm64", []string{"macosx_12_0_arm64"}, "CpuArm64"},
}

// release builds the release binaries of the working tree for the wheels'
// platforms, once for every test that needs them, and returns their
// directory.
var release = sync.OnceValues(func() (string, error) {
	out := filepath.Join(filepath.Dir(binary), "release")
	var targets []string
	for _, p := range wheelPlatforms {
		targets = append(targets, p.goos+"/"+p.goarch)
	}
	cmd := exec.Command("scripts/release", "-o", out, "-t", strings.Join(targets, " "))
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("scripts/release: %v\n%s", err, b)
	}
	return out, nil
})

// releaseBinary is the path of the release binary for goos/goarch.
func releaseBinary(t *testing.T, goos, goarch string) string {
	t.Helper()
	dir, err := release()
	if err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "torsion-*-"+goos+"-"+goarch))
	if len(matches) != 1 {
		t.Fatalf("release binaries for %s/%s: %q", goos, goarch, matches)
	}
	return matches[0]
}

func gitOutput(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// TestReleaseReproducible: two release builds of one commit, from
// checkouts at different paths, give the same bytes, listed in
// SHA256SUMS; the binary tells its version and commit.
func TestReleaseReproducible(t *testing.T) {
	t.Parallel()
	head := gitOutput(t, "rev-parse", "HEAD")
	var sums []string
	for _, where := range []string{"a", "b/deeper"} {
		src := filepath.Join(t.TempDir(), where, "torsion")
		if out, err := exec.Command("git", "clone", "-q", repo, src).CombinedOutput(); err != nil {
			t.Fatalf("git clone: %v\n%s", err, out)
		}
		if out, err := exec.Command("git", "-C", src, "checkout", "-q", head).CombinedOutput(); err != nil {
			t.Fatalf("git checkout: %v\n%s", err, out)
		}
		out := filepath.Join(src, "dist")
		cmd := exec.Command("scripts/release", "-o", out, "-t", "linux/amd64 darwin/arm64")
		cmd.Dir = src
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scripts/release: %v\n%s", err, b)
		}
		check := exec.Command("sha256sum", "-c", "SHA256SUMS")
		check.Dir = out
		if b, err := check.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c: %v\n%s", err, b)
		}
		b, _ := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
		sums = append(sums, string(b))
		// The version is HEAD's tag, or devel.
		v, err := exec.Command(filepath.Join(src, "scripts", "version")).Output()
		if err != nil {
			t.Fatal(err)
		}
		name := "torsion-" + strings.TrimSpace(string(v)) + "-linux-amd64"
		got, err := exec.Command(filepath.Join(out, name), "--version").Output()
		if want := name + " " + strings.TrimSpace(string(v)) + " go"; err != nil || !strings.HasPrefix(string(got), want) || !strings.Contains(string(got), " commit "+head[:12]+"\n") {
			t.Errorf("--version: %q %v, want %q... and commit %s", got, err, want, head[:12])
		}
	}
	if sums[0] != sums[1] || strings.Count(sums[0], "\n") != 2 {
		t.Errorf("two builds of %s differ:\n%s\n%s", head[:12], sums[0], sums[1])
	}
}

// buildWheel runs scripts/wheel for a platform's release binary.
func buildWheel(t *testing.T, goos, goarch string) string {
	t.Helper()
	cmd := exec.Command("scripts/wheel", "-b", releaseBinary(t, goos, goarch), "-p", goos+"/"+goarch, "-o", t.TempDir())
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/wheel: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestWheels: each platform's wheel is a valid zip whose RECORD lists
// every other file with its hash and size, whose WHEEL tags the platform,
// whose METADATA says what a Python user expects, and whose script is an
// executable binary for that platform's OS and machine.
func TestWheels(t *testing.T) {
	t.Parallel()
	for _, p := range wheelPlatforms {
		t.Run(p.goos+"/"+p.goarch, func(t *testing.T) {
			path := buildWheel(t, p.goos, p.goarch)
			if want := "-py3-none-" + strings.Join(p.tags, ".") + ".whl"; !strings.HasSuffix(path, want) {
				t.Errorf("wheel %s, want its name to end %s", path, want)
			}
			z, err := zip.OpenReader(path)
			if err != nil {
				t.Fatal(err)
			}
			defer z.Close()
			files := map[string][]byte{}
			var names []string
			var script *zip.File
			for _, f := range z.File {
				rc, err := f.Open()
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatalf("%s: %v", f.Name, err)
				}
				files[f.Name] = b
				names = append(names, f.Name)
				if strings.HasSuffix(f.Name, ".data/scripts/torsion") {
					script = f
				}
			}
			dist := strings.SplitN(filepath.Base(path), "-py3-", 2)[0] // torsion-VERSION
			info := dist + ".dist-info/"
			checkRecord(t, files, info+"RECORD")
			var tags []string
			for _, l := range strings.Split(string(files[info+"WHEEL"]), "\n") {
				if tag, ok := strings.CutPrefix(l, "Tag: py3-none-"); ok {
					tags = append(tags, tag)
				}
			}
			if !slices.Equal(tags, p.tags) || !strings.Contains(string(files[info+"WHEEL"]), "Root-Is-Purelib: false") {
				t.Errorf("WHEEL:\n%s\nwant tags %q", files[info+"WHEEL"], p.tags)
			}
			meta := string(files[info+"METADATA"])
			for _, want := range []string{"Name: torsion\n", "Version: " + strings.TrimPrefix(dist, "torsion-") + "\n", "Summary: ", "License: MIT\n",
				"Requires-Python: >=3.8\n", "Project-URL: Source, ", "Classifier: Programming Language :: Python :: 3\n",
				"Description-Content-Type: text/markdown\n", "\n# torsion"} {
				if !strings.Contains(meta, want) {
					t.Errorf("METADATA lacks %q", want)
				}
			}
			for _, want := range []string{"torsion/__init__.py", "torsion/__main__.py", info + "LICENSE"} {
				if _, ok := files[want]; !ok {
					t.Errorf("no %s in %q", want, names)
				}
			}
			if script == nil {
				t.Fatalf("no script in %q", names)
			}
			if mode := script.Mode(); mode&0o111 == 0 {
				t.Errorf("script mode %v: not executable", mode)
			}
			if got := machineOf(files[script.Name], p.goos); got != p.machine {
				t.Errorf("script is a binary for %q, want %s", got, p.machine)
			}
		})
	}
}

// checkRecord checks a wheel's RECORD: every file but RECORD, each once,
// with its sha256 (urlsafe base64, unpadded) and size.
func checkRecord(t *testing.T, files map[string][]byte, record string) {
	t.Helper()
	listed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(files[record]))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ",")
		if len(f) != 3 {
			t.Errorf("RECORD line %q", sc.Text())
			continue
		}
		listed[f[0]] = true
		if f[0] == record {
			if f[1] != "" || f[2] != "" {
				t.Errorf("RECORD's own line %q", sc.Text())
			}
			continue
		}
		b, ok := files[f[0]]
		sum := sha256.Sum256(b)
		if want := fmt.Sprintf("sha256=%s", base64.RawURLEncoding.EncodeToString(sum[:])); !ok || f[1] != want || f[2] != fmt.Sprint(len(b)) {
			t.Errorf("RECORD %q, the file has %s,%d", sc.Text(), want, len(b))
		}
	}
	for name := range files {
		if !listed[name] {
			t.Errorf("%s is not in RECORD", name)
		}
	}
}

// machineOf reads an executable's header: the machine it is for.
func machineOf(b []byte, goos string) string {
	if goos == "darwin" {
		f, err := macho.NewFile(bytes.NewReader(b))
		if err != nil {
			return err.Error()
		}
		return f.Cpu.String()
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return err.Error()
	}
	return f.Machine.String()
}

// TestWheelInstall installs the Linux x86_64 wheel with pip into a fresh
// virtualenv, as a Python team would, and uses it without activating the
// virtualenv: bin/torsion runs, serves a Flask application whose workers
// run the virtualenv's Python, python -m torsion runs it too, and pip
// uninstall takes it away.
func TestWheelInstall(t *testing.T) {
	t.Parallel()
	needPython(t)
	wheel := buildWheel(t, "linux", "amd64")
	venv := filepath.Join(t.TempDir(), "venv")
	if out, err := exec.Command(debianPython, "-m", "venv", "--system-site-packages", venv).CombinedOutput(); err != nil {
		t.Fatalf("python3 -m venv (scripts/test installs python3-venv): %v\n%s", err, out)
	}
	// Not activated: no VIRTUAL_ENV, and the virtualenv's bin/ is not on PATH.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIRTUAL_ENV=") && !strings.HasPrefix(kv, "PIP_") {
			env = append(env, kv)
		}
	}
	bin := filepath.Join(venv, "bin")
	runIn := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	runIn("pip", "install", "--no-index", "--disable-pip-version-check", wheel)
	if out := runIn("torsion", "--version"); !strings.HasPrefix(out, "torsion ") {
		t.Errorf("torsion --version: %q", out)
	}
	if out := runIn("python", "-m", "torsion", "--help"); !strings.Contains(out, "web") {
		t.Errorf("python -m torsion --help: %q", out)
	}
	if out := runIn("python", "-c", "import torsion; print(torsion.find_torsion_bin())"); strings.TrimSpace(out) != filepath.Join(bin, "torsion") {
		t.Errorf("find_torsion_bin() = %q, want %s", out, filepath.Join(bin, "torsion"))
	}

	app := t.TempDir()
	os.WriteFile(filepath.Join(app, "prefix_app.py"), []byte(`import sys
from flask import Flask

app = Flask(__name__)


@app.route("/")
def prefix():
    return sys.prefix
`), 0o644)
	cmd := exec.Command(filepath.Join(bin, "torsion"), "web", "--port", "tcp:0:interface=127.0.0.1", "--wsgi", "prefix_app:app", "--workers", "1")
	cmd.Dir, cmd.Env = app, env
	p := startCmd(t, cmd)
	port := p.waitLog(`Site starting on (\d+)`)[1]
	if got := curl(t, "http://127.0.0.1:"+port+"/"); got != venv {
		t.Errorf("the worker's sys.prefix is %q, want the virtualenv %s", got, venv)
	}
	p.stopOK()

	runIn("pip", "uninstall", "-y", "torsion")
	if exists(filepath.Join(bin, "torsion")) {
		t.Errorf("pip uninstall left %s", filepath.Join(bin, "torsion"))
	}
	check := exec.Command(filepath.Join(bin, "python"), "-c", "import torsion")
	check.Env = env
	if err := check.Run(); err == nil {
		t.Errorf("import torsion still works after pip uninstall")
	}
}

// TestDeb builds the Debian package and installs it with apt-get, as an
// operator would: /usr/bin/torsion runs and completes its options, dpkg
// lists what it installed, the man pages read, the systemd units are in
// place and not enabled; apt-get remove takes it all away.
func TestDeb(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	cmd := exec.Command("scripts/deb", "-o", out)
	cmd.Dir = repo
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/deb: %v", err)
	}
	deb := strings.TrimSpace(string(b))
	contents, err := exec.Command("dpkg-deb", "--contents", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	installed := []string{"/usr/bin/torsion", "/lib/systemd/system/torsion.service", "/lib/systemd/system/torsion.socket",
		"/usr/share/man/man1/torsion.1.gz", "/usr/share/man/man1/torsion-web.1.gz", "/usr/share/man/man1/torsion-dns.1.gz",
		"/usr/share/bash-completion/completions/torsion", "/usr/share/zsh/vendor-completions/_torsion",
		"/usr/share/fish/vendor_completions.d/torsion.fish", "/usr/share/doc/torsion/copyright"}
	for _, f := range installed {
		if !strings.Contains(string(contents), " ."+f+"\n") {
			t.Errorf("the package lacks %s:\n%s", f, contents)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("installing the package needs root (CI runs as root)")
	}
	if err := exec.Command("dpkg", "-S", "/usr/bin/torsion").Run(); err != nil && exists("/usr/bin/torsion") {
		t.Skip("/usr/bin/torsion exists and is not the package's: not overwriting it")
	}
	dpkgMu.Lock() // one test installs at a time
	t.Cleanup(dpkgMu.Unlock)
	apt := func(args ...string) {
		t.Helper()
		cmd := exec.Command("apt-get", append([]string{"-y", "-q", "-o", "DPkg::Lock::Timeout=120"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("apt-get %v: %v\n%s", args, err, out)
		}
	}
	apt("install", "--no-install-recommends", deb)
	t.Cleanup(func() {
		exec.Command("apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=120", "remove", "torsion").Run()
	})
	if out, err := exec.Command("/usr/bin/torsion", "--version").Output(); err != nil || !strings.HasPrefix(string(out), "torsion ") {
		t.Errorf("/usr/bin/torsion --version: %q %v", out, err)
	}
	listed, _ := exec.Command("dpkg", "-L", "torsion").Output()
	for _, f := range installed {
		if !strings.Contains(string(listed), f+"\n") || !exists(f) {
			t.Errorf("dpkg -L torsion lacks %s, or it is not there:\n%s", f, listed)
		}
	}
	page, err := exec.Command("man", "-P", "cat", "torsion-web").Output()
	if err != nil || !strings.Contains(string(page), "--wsgi") || !strings.Contains(string(page), "torsion web") {
		t.Errorf("man torsion-web: %v\n%.500s", err, page)
	}
	// The completion scripts ask the binary what to complete.
	if out, err := exec.Command("/usr/bin/torsion", "__complete", "web", "--wsg").Output(); err != nil || !strings.Contains(string(out), "--wsgi") {
		t.Errorf("completing --wsg: %q %v", out, err)
	}
	if unit, _ := os.ReadFile("/lib/systemd/system/torsion.service"); !strings.Contains(string(unit), "ExecStart=/usr/bin/torsion ") {
		t.Errorf("the unit does not run the package's binary:\n%s", unit)
	}
	if exists("/etc/systemd/system/sockets.target.wants/torsion.socket") || exists("/etc/systemd/system/multi-user.target.wants/torsion.service") {
		t.Errorf("the package enabled its units")
	}
	apt("remove", "torsion")
	for _, f := range installed {
		if exists(f) {
			t.Errorf("apt-get remove left %s", f)
		}
	}
}

// TestReadmeInstall runs the code lines of README.md's "Install" section
// as written, with sh, in a clone of the repository (as root, the apt-get
// line too, then removes the package): what a new user types works.
func TestReadmeInstall(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short")
	}
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section, _, _ := strings.Cut(strings.SplitN(string(readme), "\n## Install\n", 2)[1], "\n## ")
	src := filepath.Join(t.TempDir(), "torsion")
	if out, err := exec.Command("git", "clone", "-q", repo, src).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	if out, err := exec.Command("git", "-C", src, "checkout", "-q", gitOutput(t, "rev-parse", "HEAD")).CombinedOutput(); err != nil {
		t.Fatalf("git checkout: %v\n%s", err, out)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIRTUAL_ENV=") {
			env = append(env, kv)
		}
	}
	ran := 0
	for _, block := range codeBlocks(section) {
		for _, line := range block {
			if stripComment(line) == "" {
				continue
			}
			if strings.HasPrefix(line, "apt-get ") {
				if os.Geteuid() != 0 {
					t.Logf("not root: %s not run", line)
					continue
				}
				if err := exec.Command("dpkg", "-S", "/usr/bin/torsion").Run(); err != nil && exists("/usr/bin/torsion") {
					t.Logf("/usr/bin/torsion is not the package's: %s not run", line)
					continue
				}
				dpkgMu.Lock() // one test installs at a time
				t.Cleanup(dpkgMu.Unlock)
				t.Cleanup(func() {
					exec.Command("apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=120", "remove", "torsion").Run()
				})
				line = strings.Replace(line, "apt-get install", "apt-get install -y -q -o DPkg::Lock::Timeout=120 --no-install-recommends", 1)
			}
			cmd := exec.Command("sh", "-c", line)
			cmd.Dir, cmd.Env = src, append(env, "DEBIAN_FRONTEND=noninteractive")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", line, err, out)
			}
			ran++
		}
	}
	if ran < 5 {
		t.Fatalf("only %d commands in the Install section:\n%s", ran, section)
	}
	if out, err := exec.Command(filepath.Join(src, "venv", "bin", "torsion"), "--version").Output(); err != nil || !strings.HasPrefix(string(out), "torsion ") {
		t.Errorf("venv/bin/torsion --version after the pip line: %q %v", out, err)
	}
}

// TestVersionFromTag: a commit tagged v1.2.3 is version v1.2.3 to the
// release and 1.2.3 to the wheel; an untagged one is devel, and a
// PEP 440 development release naming its commit.
func TestVersionFromTag(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "torsion")
	if out, err := exec.Command("git", "clone", "-q", repo, src).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	version := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(src, "scripts", "version"), args...).Output()
		if err != nil {
			t.Fatalf("scripts/version %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	short, _ := exec.Command("git", "-C", src, "rev-parse", "--short=12", "HEAD").Output()
	if got, py := version(), version("-p"); got != "devel" || py != "0.0.0.dev0+g"+strings.TrimSpace(string(short)) {
		t.Errorf("untagged: %q and %q", got, py)
	}
	if out, err := exec.Command("git", "-C", src, "-c", "user.name=t", "-c", "user.email=t@t", "tag", "-a", "-m", "test", "v1.2.3").CombinedOutput(); err != nil {
		t.Fatalf("git tag: %v\n%s", err, out)
	}
	if got, py := version(), version("-p"); got != "v1.2.3" || py != "1.2.3" {
		t.Errorf("tagged v1.2.3: %q and %q", got, py)
	}
}
