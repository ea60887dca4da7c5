package loadtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/selfheal/selfheal/remediator/store"
)

// WaitHeal polls the heal history API until the target's newest heal has finished, and
// returns it.
func (r *Remediator) WaitHeal(target string, within time.Duration) (store.Heal, error) {
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(r.URL + "/api/v1/heals?target=" + url.QueryEscape(target))
		if err != nil {
			return store.Heal{}, err
		}
		var out struct {
			Heals []store.Heal `json:"heals"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		_ = resp.Body.Close()
		if err != nil {
			return store.Heal{}, fmt.Errorf("heal history of %s: %w", target, err)
		}
		if len(out.Heals) > 0 && out.Heals[0].Result != store.HealRunning {
			return out.Heals[0], nil
		}
		if time.Now().After(deadline) {
			return store.Heal{}, fmt.Errorf("no finished heal of %s within %s (history: %+v)", target, within, out.Heals)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
