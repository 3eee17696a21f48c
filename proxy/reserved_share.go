package proxy

// LearnedCaps returns the reserved-concurrency caps learned here, by
// function, as they are now (grown back included): what a cluster shares
// with its other replicas. Nil when the proxy learns none (not Lambda, or
// SEQUOIA_ADAPTIVE off). It walks every function invoked: for a
// background reader.
func (p *Proxy) LearnedCaps() map[string]int {
	r := p.plat.reserved
	if r == nil {
		return nil
	}
	out := map[string]int{}
	r.fns.Range(func(k, _ any) bool {
		if n := r.capOf(k.(string)); n > 0 {
			out[k.(string)] = n
		}
		return true
	})
	return out
}

// AdoptCap takes the cap another replica learned for fn (from a throttle
// of its own calls) as this replica's, unless this one learned a cap of
// its own: it then grows back like one learned here. Without learning
// (not Lambda, or SEQUOIA_ADAPTIVE off) it does nothing.
func (p *Proxy) AdoptCap(fn string, n int) {
	r := p.plat.reserved
	if r == nil || n <= 0 || n > maxLearnedCap {
		return
	}
	st := r.state(fn)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.learned.Load() != 0 {
		return
	}
	st.at.Store(r.now().UnixNano())
	st.learned.Store(int64(n))
}
