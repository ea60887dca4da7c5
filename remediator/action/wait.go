package action

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// WaitRunner gives the target time, e.g. to finish starting, before the next verification.
type WaitRunner struct{}

// Run waits for the step's duration or until ctx ends, whichever is first.
func (WaitRunner) Run(ctx context.Context, req Request) (string, error) {
	if req.Step == nil || req.Step.Wait == nil {
		return "", errors.New("not a wait step")
	}
	d := time.Duration(*req.Step.Wait)
	start := time.Now()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return fmt.Sprintf("waited %s", d), nil
	case <-ctx.Done():
		return "", timeoutError(ctx, fmt.Sprintf("wait %s", d), start)
	}
}
