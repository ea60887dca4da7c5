package swarm

import (
	"testing"

	"github.com/moby/moby/api/types/swarm"

	"github.com/selfheal/selfheal/remediator/config"
)

func TestScaleTarget(t *testing.T) {
	n := func(i int) *int { return &i }
	for _, tc := range []struct {
		cur    int64
		sa     config.SwarmAction
		want   int64
		bounds string
	}{
		{cur: 2, sa: config.SwarmAction{Replicas: n(5)}, want: 5},
		{cur: 2, sa: config.SwarmAction{By: n(1), Min: n(1), Max: n(3)}, want: 3, bounds: " (bounds 1..3)"},
		{cur: 3, sa: config.SwarmAction{By: n(1), Min: n(1), Max: n(3)}, want: 3, bounds: " (bounds 1..3)"},
		{cur: 9, sa: config.SwarmAction{By: n(1), Min: n(1), Max: n(3)}, want: 3, bounds: " (bounds 1..3)"},
		{cur: 2, sa: config.SwarmAction{By: n(-5), Min: n(1), Max: n(3)}, want: 1, bounds: " (bounds 1..3)"},
		{cur: 2, sa: config.SwarmAction{By: n(-5)}, want: 0},
		{cur: 2, sa: config.SwarmAction{Replicas: n(7), Max: n(4)}, want: 4, bounds: " (bounds 0..4)"},
		{cur: 2, sa: config.SwarmAction{Replicas: n(0), Min: n(1)}, want: 1, bounds: " (bounds 1..)"},
	} {
		got, bounds, err := scaleTarget(tc.cur, &tc.sa)
		if err != nil || got != tc.want || bounds != tc.bounds {
			t.Errorf("from %d with %+v: %d %q %v, want %d %q", tc.cur, tc.sa, got, bounds, err, tc.want, tc.bounds)
		}
	}
	if _, _, err := scaleTarget(1, &config.SwarmAction{By: n(1), Min: n(3), Max: n(2)}); err == nil {
		t.Error("min above max accepted")
	}
	if _, _, err := scaleTarget(1, &config.SwarmAction{}); err == nil {
		t.Error("scale without replicas or by accepted")
	}
}

func TestSameButRestartAndScale(t *testing.T) {
	one, two := uint64(1), uint64(2)
	spec := func(image string, force uint64, replicas *uint64) swarm.ServiceSpec {
		return swarm.ServiceSpec{
			Annotations:  swarm.Annotations{Name: "api"},
			TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: image}, ForceUpdate: force},
			Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: replicas}},
		}
	}
	if !sameButRestartAndScale(spec("api:1", 0, &one), spec("api:1", 1, &two)) {
		t.Error("a force-update and a scale count as a deploy")
	}
	if sameButRestartAndScale(spec("api:1", 0, &one), spec("api:2", 0, &one)) {
		t.Error("a new image does not count as a deploy")
	}
}
