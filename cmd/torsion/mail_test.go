package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
	smtpPort, popPort := freePort(t), freePort(t)
	cmd := exec.Command(binary, "mail", "-E", "-H", "localhost", "-d", "localhost=emails", "-u", "alice=secret", "--user", "bob:hunter2",
		"--max-message-size", "1048576", "--smtp", "tcp:"+smtpPort+":interface=127.0.0.1", "--pop3", "tcp:"+popPort+":interface=127.0.0.1")
	cmd.Dir = dir
	p := startCmd(t, cmd)
	p.waitLog(`POP3 starting on`)
	p.waitLog(`ESMTP starting on`)
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
`
	out, err := exec.Command(debianPython, "-c", client, smtpPort, popPort).CombinedOutput()
	if err != nil {
		t.Fatalf("the smtplib/poplib client: %v\n%s\nlog:\n%s", err, out, p.logText())
	}
	got := string(out)
	for _, want := range []string{
		"refused nobody@localhost 550", "refused carol@example.net 550", "stat 1",
		"line Subject: hello", "line first line", "line .a dotted line", "after 0",
		"big refused 552", "concurrent 20 True",
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
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d; log:\n%s", code, p.logText())
	}
	if out, code := run(t, "mail", "-u", "bob=x"); code != 2 || !strings.Contains(out, "give -d DOMAIN=DIR before the users of DOMAIN") {
		t.Errorf("-u before -d: exit %d: %s", code, out)
	}
}
