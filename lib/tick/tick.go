// Package tick runs periodic work on a clockwork ticker: the one loop behind
// the backends' expiry purges, the SCIM status flush, user sync's lease
// renewal and the admin identity refresh. It is a leaf: it imports nothing of
// ours.
package tick

import "github.com/jonboulle/clockwork"

// Every calls fn on every tick of t until done is closed, then stops t.
// The caller makes t before it starts the loop's goroutine, so that a fake
// clock advanced right after the start is seen.
func Every(done <-chan struct{}, t clockwork.Ticker, fn func()) {
	While(done, t, func() bool {
		fn()
		return true
	})
}

// While calls fn on every tick of t until done is closed or fn returns
// false, then stops t.
func While(done <-chan struct{}, t clockwork.Ticker, fn func() bool) {
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.Chan():
			if !fn() {
				return
			}
		}
	}
}
