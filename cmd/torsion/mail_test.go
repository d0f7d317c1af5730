package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMail runs the seed's twistd mail command line (-E -H localhost
// -d localhost=emails) with a user, and talks to it with Python's smtplib
// and poplib: mail for the user is delivered to its Maildir and read,
// dot-stuffed line included, and deleted; mail for an unknown user, or
// for another domain (relaying), is refused with 550.
func TestMail(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	cmd := exec.Command(binary, "mail", "-E", "-H", "localhost", "-d", "localhost=emails", "-u", "alice=secret", "--user", "bob:hunter2",
		"--max-message-size", "1048576", "--smtp", "tcp:0:interface=127.0.0.1", "--pop3", "tcp:0:interface=127.0.0.1")
	cmd.Dir = dir
	p := startCmd(t, cmd)
	popPort := p.waitLog(`POP3 starting on (\d+)`)[1]
	smtpPort := p.waitLog(`ESMTP starting on (\d+)`)[1]
	client := `import poplib, smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.ehlo()
s.sendmail("bob@example.com", ["alice@localhost"], "Subject: hello\r\n\r\nfirst line\r\n.a dotted line\r\n")
for to in ("nobody@localhost", "carol@example.net"):
    try:
        s.sendmail("bob@example.com", [to], "Subject: x\r\n\r\nx\r\n")
        print("accepted", to)
    except smtplib.SMTPRecipientsRefused as e:
        print("refused", to, e.recipients[to][0])
s.quit()
p = poplib.POP3("127.0.0.1", int(sys.argv[2]))
p.user("alice")
p.pass_("secret")
print("stat", p.stat()[0])
for line in p.retr(1)[1]:
    print("line", line.decode())
p.dele(1)
p.quit()
p = poplib.POP3("127.0.0.1", int(sys.argv[2]))
p.user("alice")
p.pass_("secret")
print("after", p.stat()[0])
p.quit()
# Over --max-message-size: refused, and nothing stored.
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
try:
    s.sendmail("x@example.com", ["bob@localhost"], "Subject: big\r\n\r\n" + "y" * (2 << 20) + "\r\n")
    print("big accepted")
except smtplib.SMTPException as e:
    print("big refused", getattr(e, "smtp_code", e))
s.quit()
# Twenty deliveries at once, each byte for byte.
import threading
bodies = ["Subject: n%d\r\nX-Seq: %d\r\n\r\n%s\r\n" % (i, i, "line %d " % i * 20) for i in range(20)]
def send(b):
    c = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
    c.sendmail("x@example.com", ["bob@localhost"], b)
    c.quit()
ts = [threading.Thread(target=send, args=(b,)) for b in bodies]
[t.start() for t in ts]
[t.join() for t in ts]
p = poplib.POP3("127.0.0.1", int(sys.argv[2]))
p.user("bob")
p.pass_("hunter2")
got = []
for i in range(1, p.stat()[0] + 1):
    msg = b"\r\n".join(p.retr(i)[1]) + b"\r\n"
    got.append(msg[msg.index(b"Subject:"):].decode())
print("concurrent", len(got), sorted(got) == sorted(bodies))
p.quit()
# Addresses with control characters: a bare CR in a quoted local part once
# reached Return-Path, where a mail reader found an injected Bcc:.
import socket
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = c.makefile("rb")
def reply():
    while True:
        line = f.readline().decode()
        if line[3:4] != "-":
            return line[:3]
reply()
c.sendall(b"EHLO x\r\n"); reply()
c.sendall(b'MAIL FROM:<"a\rBcc: victim@example.org"@example.com>\r\n')
print("cr sender", reply())
c.sendall(b"MAIL FROM:<x@example.com>\r\n"); reply()
c.sendall(b'RCPT TO:<"b\x1b[31m"@localhost>\r\n')
print("escape recipient", reply())
c.close()
# postmaster, with the domain and without, is always taken (RFC 5321
# 4.5.1): here it goes to alice, the domain's first user.
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
for to in ("postmaster@localhost", "postmaster"):
    s.sendmail("x@example.com", [to], "Subject: pm %s\r\n\r\nhello\r\n" % to)
    print("postmaster taken", to)
s.quit()
p = poplib.POP3("127.0.0.1", int(sys.argv[2]))
p.user("alice")
p.pass_("secret")
n = p.stat()[0]
print("alice after postmaster", n)
for i in range(1, n + 1):
    p.dele(i)
p.quit()
`
	out, err := exec.Command(debianPython, "-c", client, smtpPort, popPort).CombinedOutput()
	if err != nil {
		t.Fatalf("the smtplib/poplib client: %v\n%s\nlog:\n%s", err, out, p.logText())
	}
	got := string(out)
	// RFC 5321 4.4: the client's HELO name and its address in brackets,
	// no port glued on.
	if !regexp.MustCompile(`(?m)^line Received: from \S+ \(\[127\.0\.0\.1\]\) by localhost with ESMTP; `).MatchString(got) {
		t.Errorf("no Received line of RFC 5321's form:\n%s", got)
	}
	for _, want := range []string{
		"refused nobody@localhost 550", "refused carol@example.net 550", "stat 1",
		"line Subject: hello", "line first line", "line .a dotted line", "after 0",
		"big refused 552", "concurrent 20 True", "cr sender 553", "escape recipient 553", "postmaster taken postmaster@localhost", "postmaster taken postmaster\n", "alice after postmaster 2",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the client's output lacks %q:\n%s", want, got)
		}
	}
	// The message went through the Maildir, and QUIT removed it.
	for _, sub := range []string{"tmp", "new", "cur"} {
		if ents, err := os.ReadDir(filepath.Join(dir, "emails", "alice", sub)); err != nil || len(ents) != 0 {
			t.Errorf("emails/alice/%s: %v %v", sub, ents, err)
		}
	}
	p.waitLog(`message delivered from=bob@example.com to=alice@localhost`)
	p.stopOK()
	if out, code := run(t, "mail", "-u", "bob=x"); code != 2 || !strings.Contains(out, "give -d DOMAIN=DIR before the users of DOMAIN") {
		t.Errorf("-u before -d: exit %d: %s", code, out)
	}
}

// TestMailTLSRelayAPOP: with --certificate the SMTP server offers
// STARTTLS, and with --relay-via AUTH PLAIN over it; a user who logs in
// sends to another domain through the smarthost (a second torsion mail),
// where its user reads it over POP3 with APOP. Without a login, or with a
// wrong password, relaying stays refused; AUTH is not offered before TLS.
func TestMailTLSRelayAPOP(t *testing.T) {
	t.Parallel()
	needPython(t)
	dir := t.TempDir()
	cert, key := openssl(t, dir, "localhost")
	b := exec.Command(binary, "mail", "-H", "remote.test", "-d", "remote.test=remote", "-u", "carol=pw",
		"--smtp", "tcp:0:interface=127.0.0.1", "--pop3", "tcp:0:interface=127.0.0.1")
	b.Dir = dir
	pb := startCmd(t, b)
	bSMTP := pb.waitLog(`ESMTP starting on (\d+)`)[1]
	bPOP := pb.waitLog(`POP3 starting on (\d+)`)[1]
	a := exec.Command(binary, "mail", "-H", "localhost", "-d", "localhost=local", "-u", "alice=secret",
		"--certificate", cert, "--private-key", key, "--relay-via", "127.0.0.1:"+bSMTP,
		"--smtp", "tcp:0:interface=127.0.0.1", "--pop3", "none")
	a.Dir = dir
	pa := startCmd(t, a)
	aSMTP := pa.waitLog(`ESMTP starting on (\d+)`)[1]
	client := `import poplib, smtplib, ssl, sys
a, bpop = int(sys.argv[1]), int(sys.argv[2])
s = smtplib.SMTP("127.0.0.1", a)
s.ehlo()
print("before tls auth", s.has_extn("auth"), "starttls", s.has_extn("starttls"))
try:
    s.sendmail("alice@localhost", ["carol@remote.test"], "Subject: x\r\n\r\nx\r\n")
except smtplib.SMTPRecipientsRefused as e:
    print("anonymous relay", e.recipients["carol@remote.test"][0])
s.starttls(context=ssl._create_unverified_context())
s.ehlo()
print("after tls auth", s.esmtp_features.get("auth", "").strip())
try:
    s.login("alice", "wrong")
except smtplib.SMTPAuthenticationError as e:
    print("wrong password", e.smtp_code)
s.login("alice", "secret")
s.sendmail("alice@localhost", ["carol@remote.test", "alice@localhost"], "Subject: relayed\r\n\r\nthrough the smarthost\r\n")
s.quit()
p = poplib.POP3("127.0.0.1", bpop)
p.apop("carol", "pw")
print("carol has", p.stat()[0])
print("\n".join(l.decode() for l in p.retr(1)[1] if l.startswith((b"Subject", b"through"))))
p.quit()
try:
    poplib.POP3("127.0.0.1", bpop).apop("carol", "not-pw")
except poplib.error_proto as e:
    print("apop refused", e)
`
	out, err := exec.Command(debianPython, "-c", client, aSMTP, bPOP).CombinedOutput()
	if err != nil {
		t.Fatalf("the client: %v\n%s\nA's log:\n%s\nB's log:\n%s", err, out, pa.logText(), pb.logText())
	}
	got := string(out)
	for _, want := range []string{
		"before tls auth False starttls True", "anonymous relay 550", "after tls auth PLAIN", "wrong password 535",
		"carol has 1", "Subject: relayed", "through the smarthost", "apop refused b'-ERR invalid user or password'",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the client's output lacks %q:\n%s", want, got)
		}
	}
	// The local copy too, delivered once.
	if ents, err := os.ReadDir(filepath.Join(dir, "local", "alice", "new")); err != nil || len(ents) != 1 {
		t.Errorf("local/alice/new: %v %v", ents, err)
	}
	pa.waitLog(`message delivered from=alice@localhost to=carol@remote.test,alice@localhost .* user=alice`)
	for _, p := range []*proc{pa, pb} {
		p.stopOK()
	}
	if out, code := run(t, "mail", "-d", "x=y", "--relay-via", "127.0.0.1:25"); code != 2 || !strings.Contains(out, "--relay-via needs --certificate") {
		t.Errorf("--relay-via without TLS: exit %d: %s", code, out)
	}
}

// TestMailOperations: --metrics and --health serve for mail: the health
// check is ready, and the metrics count sessions by protocol, logins by
// result and deliveries, from Python's smtplib and poplib.
func TestMailOperations(t *testing.T) {
	t.Parallel()
	needPython(t)
	local := "tcp:0:interface=127.0.0.1"
	cmd := exec.Command(binary, "mail", "-d", "localhost=emails", "-u", "alice=secret",
		"--smtp", local, "--pop3", local, "--metrics", local, "--health", local)
	cmd.Dir = t.TempDir()
	p := startCmd(t, cmd)
	smtpPort, popPort := p.waitLog(`ESMTP starting on (\d+)`)[1], p.waitLog(`POP3 starting on (\d+)`)[1]
	mport, hport := p.waitLog(`Metrics starting on (\d+)`)[1], p.waitLog(`Health starting on (\d+)`)[1]
	waitUntil(10*time.Second, func() bool { return curl(t, "-s", "http://127.0.0.1:"+hport+"/") == "ready\n" },
		func() { t.Fatalf("the health check is not ready:\n%s", p.logText()) })
	client := `import poplib, smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
s.sendmail("bob@example.com", ["alice@localhost"], "Subject: hello\r\n\r\nhi\r\n")
s.quit()
p = poplib.POP3("127.0.0.1", int(sys.argv[2]))
try:
    p.user("alice")
    p.pass_("wrong")
except poplib.error_proto:
    pass
p.user("alice")
p.pass_("secret")
print(p.stat()[0])
p.quit()
`
	out, err := exec.Command(debianPython, "-c", client, smtpPort, popPort).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("the client: %v\n%s", err, out)
	}
	families := scrapeMetrics(t, mport)
	for name, want := range map[string]map[string]float64{
		"torsion_mail_sessions_total":   {"smtp": 1, "pop3": 1},
		"torsion_mail_logins_total":     {"false pop3": 1, "true pop3": 1}, // labels ok, protocol
		"torsion_mail_deliveries_total": {"delivered": 1},
	} {
		if got := counters(families, name); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s %v, want %v", name, got, want)
		}
	}
	p.stopOK()
}
