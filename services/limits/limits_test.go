package limits

import (
	"path/filepath"
	"testing"
)

// TestDetect reads each testdata directory as the root of a machine: its proc/self/cgroup
// says where the process sits, its sys/fs/cgroup holds the limits.
func TestDetect(t *testing.T) {
	const fbMem, fbCPU = 512 << 20, 3.0
	tests := []struct {
		root string
		why  string
		want Limits
	}{
		{"none", "no cgroup at all (there is no testdata/none) uses the fallbacks", Limits{fbMem, SourceFlag, fbCPU, SourceFlag}},
		{"v2-namespaced", "v2 in a container namespace: limits at the mount point", Limits{256 << 20, SourceCgroupV2, 0.5, SourceCgroupV2}},
		{"v2-unlimited", "v2 unlimited keeps the fallbacks", Limits{fbMem, SourceFlag, fbCPU, SourceFlag}},
		{"v2-nested", "v2 takes the smallest limit up the tree", Limits{1 << 30, SourceCgroupV2, 1.5, SourceCgroupV2}},
		{"v1-host", "v1 with host paths; the root's huge number is no limit", Limits{128 << 20, SourceCgroupV1, 1, SourceCgroupV1}},
		{"v1-namespaced", "v1 namespaced: limits at the mount point, quota -1 is unlimited", Limits{64 << 20, SourceCgroupV1, fbCPU, SourceFlag}},
		{"garbage", "garbage is ignored, not fatal", Limits{fbMem, SourceFlag, fbCPU, SourceFlag}},
	}
	for _, tc := range tests {
		t.Run(tc.root, func(t *testing.T) {
			if got := Detect(filepath.Join("testdata", tc.root), fbMem, fbCPU); got != tc.want {
				t.Errorf("%s: Detect() = %+v, want %+v", tc.why, got, tc.want)
			}
		})
	}
}
