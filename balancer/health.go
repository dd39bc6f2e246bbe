package balancer

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"time"
)

// checker is the active health check of one backend: one goroutine, one
// probe in flight at a time.
type checker struct {
	cancel context.CancelFunc
}

func sameCheck(a, b HealthCheck) bool {
	return a.Active == b.Active && a.Path == b.Path && a.Host == b.Host &&
		slices.Equal(a.Statuses, b.Statuses) && a.Interval == b.Interval &&
		a.Timeout == b.Timeout && a.Rise == b.Rise && a.Fall == b.Fall && a.Jitter == b.Jitter
}

// startChecker starts be's active checks. b.mu must be held.
func (b *Balancer) startChecker(be *backend, h HealthCheck) {
	if b.closed {
		return
	}
	ctx, cancel := context.WithCancel(b.ctx)
	be.checker = &checker{cancel: cancel}
	be.checkCfg = h
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.runChecks(ctx, be, h)
	}()
}

// stopChecker stops be's active checks; the goroutine ends at its next
// select or when its probe's context is cancelled. b.mu must be held.
func (b *Balancer) stopChecker(be *backend) {
	if be.checker != nil {
		be.checker.cancel()
		be.checker = nil
	}
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

func (b *Balancer) runChecks(ctx context.Context, be *backend, h HealthCheck) {
	// The first probe goes out after the jitter alone, so a new backend is
	// checked at once rather than one interval later.
	t := time.NewTimer(jitter(h.Jitter))
	defer t.Stop()
	var ok, bad int
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := b.probe(ctx, be, h)
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		if err == nil {
			ok, bad = ok+1, 0
			if be.activeDown.Load() && ok >= h.Rise {
				be.activeDown.Store(false)
				be.upSince.Store(now.UnixNano())
				be.setState(now, "")
				b.log().Info("balancer: backend up", "pool", be.pool, "backend", be.id, "check", "active")
			}
		} else {
			ok, bad = 0, bad+1
			be.mu.Lock()
			be.lastErr = err.Error()
			be.mu.Unlock()
			if !be.activeDown.Load() && bad >= h.Fall {
				be.activeDown.Store(true)
				be.setState(now, err.Error())
				b.log().Warn("balancer: backend down", "pool", be.pool, "backend", be.id, "check", "active", "err", err)
			}
		}
		t.Reset(h.Interval + jitter(h.Jitter))
	}
}

// probe runs one active check.
func (b *Balancer) probe(ctx context.Context, be *backend, h HealthCheck) error {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	if h.Active == CheckTCP {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", be.host)
		if err != nil {
			return err
		}
		return c.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, be.scheme+"://"+be.host+h.Path, nil)
	if err != nil {
		return err
	}
	if h.Host != "" {
		req.Host = h.Host
	}
	req.Header.Set("User-Agent", "carbonlb-health-check")
	resp, err := b.probeRT.RoundTrip(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if len(h.Statuses) == 0 {
		if resp.StatusCode >= 200 && resp.StatusCode < 400 {
			return nil
		}
	} else if slices.Contains(h.Statuses, resp.StatusCode) {
		return nil
	}
	return fmt.Errorf("health check %s: status %d", h.Path, resp.StatusCode)
}

// result reports the outcome of one try to the passive health check;
// trial is the ticket the try held, if any. The try's slot is still to be
// released.
func (b *Balancer) result(s *service, be *backend, trial uint64, err error, now time.Time) {
	if err == nil {
		if be.passiveFails.Load() != 0 {
			be.passiveFails.Store(0)
		}
		if be.downUntil.Load() != 0 {
			be.downUntil.Store(0)
			be.endTrial(trial)
			be.upSince.Store(now.UnixNano())
			be.setState(now, "")
			b.log().Info("balancer: backend up", "pool", be.pool, "backend", be.id, "check", "passive")
		}
		return
	}
	be.failures.Add(1)
	be.mu.Lock()
	be.lastErr = err.Error()
	be.mu.Unlock()
	if s.Health.MaxFails < 0 {
		be.endTrial(trial)
		return
	}
	n := be.passiveFails.Add(1)
	wasTrial := trial != 0 && be.trial.Load() == trial
	if int(n) >= s.Health.MaxFails || wasTrial {
		first := be.downUntil.Load() == 0
		be.downUntil.Store(now.Add(s.Health.FailTimeout).UnixNano())
		be.endTrial(trial)
		if first {
			be.setState(now, err.Error())
			b.log().Warn("balancer: backend down", "pool", be.pool, "backend", be.id, "check", "passive", "err", err)
		}
	}
}
