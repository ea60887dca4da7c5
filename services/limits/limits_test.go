package limits

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDetect(t *testing.T) {
	const fbMem, fbCPU = 512 << 20, 3.0
	tests := []struct {
		name  string
		files map[string]string
		want  Limits
	}{
		{
			name:  "no cgroup at all uses the fallbacks",
			files: map[string]string{},
			want:  Limits{fbMem, SourceFlag, fbCPU, SourceFlag},
		},
		{
			name: "v2 in a container namespace",
			files: map[string]string{
				"proc/self/cgroup":         "0::/\n",
				"sys/fs/cgroup/memory.max": "268435456\n",
				"sys/fs/cgroup/cpu.max":    "50000 100000\n",
			},
			want: Limits{256 << 20, SourceCgroupV2, 0.5, SourceCgroupV2},
		},
		{
			name: "v2 unlimited keeps the fallbacks",
			files: map[string]string{
				"proc/self/cgroup":         "0::/\n",
				"sys/fs/cgroup/memory.max": "max\n",
				"sys/fs/cgroup/cpu.max":    "max 100000\n",
			},
			want: Limits{fbMem, SourceFlag, fbCPU, SourceFlag},
		},
		{
			name: "v2 takes the smallest limit up the tree",
			files: map[string]string{
				"proc/self/cgroup":             "0::/a/b\n",
				"sys/fs/cgroup/a/b/memory.max": "max\n",
				"sys/fs/cgroup/a/memory.max":   "1073741824\n",
				"sys/fs/cgroup/a/b/cpu.max":    "200000 100000\n",
				"sys/fs/cgroup/a/cpu.max":      "150000 100000\n",
			},
			want: Limits{1 << 30, SourceCgroupV2, 1.5, SourceCgroupV2},
		},
		{
			name: "v1 with host paths",
			files: map[string]string{
				"proc/self/cgroup": "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n",
				"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes":  "134217728\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes":             "9223372036854771712\n",
				"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us":  "100000\n",
				"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
			},
			want: Limits{128 << 20, SourceCgroupV1, 1, SourceCgroupV1},
		},
		{
			name: "v1 namespaced: limits at the mount point, quota -1 is unlimited",
			files: map[string]string{
				"proc/self/cgroup":                           "4:memory:/docker/abc\n1:cpu:/docker/abc\n",
				"sys/fs/cgroup/memory/memory.limit_in_bytes": "67108864\n",
				"sys/fs/cgroup/cpu/cpu.cfs_quota_us":         "-1\n",
				"sys/fs/cgroup/cpu/cpu.cfs_period_us":        "100000\n",
			},
			want: Limits{64 << 20, SourceCgroupV1, fbCPU, SourceFlag},
		},
		{
			name: "garbage is ignored, not fatal",
			files: map[string]string{
				"proc/self/cgroup":         "0::/\n",
				"sys/fs/cgroup/memory.max": "lots\n",
				"sys/fs/cgroup/cpu.max":    "x y\n",
			},
			want: Limits{fbMem, SourceFlag, fbCPU, SourceFlag},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tc.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := Detect(root, fbMem, fbCPU); got != tc.want {
				t.Errorf("Detect() = %+v, want %+v", got, tc.want)
			}
		})
	}
}
