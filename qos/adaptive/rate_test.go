package adaptive

import (
	"sync"
	"testing"
	"time"
)

func TestRates(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewRates(2, time.Minute)
	r.now = func() time.Time { return now }
	if d := r.Delay("a"); d != 0 {
		t.Errorf("unpaced tenant waits %v", d)
	}
	r.OnRateThrottle("a", 0) // the platform did not say: nothing
	if r.Paced() != 0 {
		t.Errorf("paced without a rate")
	}
	r.OnRateThrottle("a", 60) // one a second
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second} {
		if d := r.Delay("a"); d != want {
			t.Errorf("call %d waits %v, want %v", i, d, want)
		}
	}
	if d := r.Delay("b"); d != 0 {
		t.Errorf("another tenant waits %v", d)
	}
	now = now.Add(10 * time.Second) // the reservations above are past
	if d := r.Delay("a"); d != 0 {
		t.Errorf("after the backlog cleared: %v", d)
	}
	if d := r.Delay("a"); d != time.Second {
		t.Errorf("paced again: %v, want 1s", d)
	}
	r.OnRateThrottle("b", 120)
	r.OnRateThrottle("c", 120) // over the bound: not paced
	if r.Paced() != 2 || r.Delay("c") != 0 {
		t.Errorf("paced %d, c waits %v", r.Paced(), r.Delay("c"))
	}
	now = now.Add(2 * time.Minute) // quiet: pacing ends
	if d := r.Delay("a"); d != 0 || r.Paced() != 1 {
		t.Errorf("after the quiet period: %v, %d paced", d, r.Paced())
	}
}

func TestRatesConcurrent(t *testing.T) {
	r := NewRates(100, time.Hour)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 500 {
				tenant := string(rune('a' + (w+i)%10))
				if i < 10 {
					r.OnRateThrottle(tenant, 6000)
				}
				if d := r.Delay(tenant); d < 0 {
					t.Errorf("negative delay %v", d)
				}
			}
		})
	}
	wg.Wait()
	if r.Paced() != 10 {
		t.Errorf("%d tenants paced, want 10", r.Paced())
	}
}
