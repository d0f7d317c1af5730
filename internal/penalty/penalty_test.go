package penalty

import (
	"net"
	"testing"
	"time"
)

// TestTable: each failure doubles the wait of its address, up to Max, on
// any connection of it (another port); another address, a success, or a
// quiet Forget clears it; the table keeps at most Size addresses.
func TestTable(t *testing.T) {
	now := time.Unix(1e9, 0)
	tb := &Table{Base: time.Second, Max: 8 * time.Second, Forget: time.Minute, Size: 3, Now: func() time.Time { return now }}
	a1 := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 1000}
	a2 := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 2000} // the same client, another connection
	other := &net.TCPAddr{IP: net.ParseIP("192.0.2.2"), Port: 1000}
	v6a := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}
	v6b := &net.TCPAddr{IP: net.ParseIP("2001:db8::ffff"), Port: 1} // the same /64
	for i, want := range []time.Duration{0, 1, 2, 4, 8, 8} {
		if got := tb.Delay(a2); got != want*time.Second {
			t.Fatalf("after %d failures on another connection: %v, want %v", i, got, want*time.Second)
		}
		tb.Fail(a1)
	}
	if got := tb.Delay(other); got != 0 {
		t.Errorf("another address: %v", got)
	}
	tb.Fail(v6a)
	if got := tb.Delay(v6b); got != time.Second {
		t.Errorf("an address in the same IPv6 /64: %v, want 1s", got)
	}
	now = now.Add(2 * time.Minute)
	if got := tb.Delay(a1); got != 0 {
		t.Errorf("after a quiet Forget: %v", got)
	}
	tb.Fail(a1)
	tb.Succeed(a2)
	if got := tb.Delay(a1); got != 0 {
		t.Errorf("after a success: %v", got)
	}
	for i := range 10 {
		tb.Fail(&net.TCPAddr{IP: net.IPv4(10, 0, 0, byte(i))})
	}
	if len(tb.m) > 3 {
		t.Errorf("%d addresses kept, want at most 3", len(tb.m))
	}
	if got := tb.Delay(&net.UnixAddr{Name: "@", Net: "unix"}); got != 0 {
		t.Errorf("a Unix peer: %v", got)
	}
}
