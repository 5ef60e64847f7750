package webhook

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"slipway.dev/slipway/internal/clientaddr"
)

// Limits are the receiver's rate limits. Zero fields take the defaults.
// Unverified traffic (unknown hooks, bad or missing signatures) is limited
// per source address and per hook; verified deliveries only meet a high
// ceiling per integration, since a provider such as GitHub does not
// redeliver a refused push by itself.
type Limits struct {
	UnverifiedPerSource    rate.Limit // per second; default 1
	UnverifiedBurst        int        // default 20
	UnverifiedPerHook      rate.Limit // per second; default 2
	VerifiedPerIntegration rate.Limit // per second; default 100
	VerifiedBurst          int        // default 1000
	// Sources decides a request's source address (the TCP peer unless it
	// is a trusted reverse proxy).
	Sources clientaddr.Resolver
}

func (l Limits) withDefaults() Limits {
	if l.UnverifiedPerSource <= 0 {
		l.UnverifiedPerSource = 1
	}
	if l.UnverifiedBurst <= 0 {
		l.UnverifiedBurst = 20
	}
	if l.UnverifiedPerHook <= 0 {
		l.UnverifiedPerHook = 2
	}
	if l.VerifiedPerIntegration <= 0 {
		l.VerifiedPerIntegration = 100
	}
	if l.VerifiedBurst <= 0 {
		l.VerifiedBurst = 1000
	}
	return l
}

// maxBuckets bounds each bucket map: sources are the sender's choice.
// When full, the map starts over (every bucket full again), which errs on
// letting traffic through rather than on growing without bound.
const maxBuckets = 10000

type buckets struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	m     map[string]*rate.Limiter
}

func newBuckets(limit rate.Limit, burst int) *buckets {
	return &buckets{limit: limit, burst: burst, m: map[string]*rate.Limiter{}}
}

func (b *buckets) get(key string) *rate.Limiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.m[key]
	if l == nil {
		if len(b.m) >= maxBuckets {
			b.m = map[string]*rate.Limiter{}
		}
		l = rate.NewLimiter(b.limit, b.burst)
		b.m[key] = l
	}
	return l
}

// left reports whether a token is available without taking it, and how
// long until one is.
func (b *buckets) left(key string) (time.Duration, bool) {
	l := b.get(key)
	now := time.Now()
	if l.TokensAt(now) >= 1 {
		return 0, true
	}
	r := l.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return wait, false
}

func (b *buckets) spend(key string) { b.get(key).Allow() }

type limits struct {
	source, hook, verifiedInteg *buckets
	sources                     clientaddr.Resolver
}

func newLimits(l Limits) *limits {
	l = l.withDefaults()
	return &limits{
		source:        newBuckets(l.UnverifiedPerSource, l.UnverifiedBurst),
		hook:          newBuckets(l.UnverifiedPerHook, l.UnverifiedBurst),
		verifiedInteg: newBuckets(l.VerifiedPerIntegration, l.VerifiedBurst),
		sources:       l.Sources,
	}
}

func (l *limits) unverifiedSource(source string) (time.Duration, bool) { return l.source.left(source) }
func (l *limits) unverifiedHookLeft(key string) bool                   { _, ok := l.hook.left(key); return ok }
func (l *limits) hookWait(key string) time.Duration                    { d, _ := l.hook.left(key); return d }
func (l *limits) verifiedLeft(integ string) (time.Duration, bool)      { return l.verifiedInteg.left(integ) }
func (l *limits) spendVerified(integ string)                           { l.verifiedInteg.spend(integ) }

// spendUnverified charges one unverified request to its source and, when
// known, its hook.
func (l *limits) spendUnverified(source, hookKey string) {
	l.source.spend(source)
	if hookKey != "" {
		l.hook.spend(hookKey)
	}
}
