package testutil

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
)

// Machine describes, as Markdown list items, where a timed run was measured: CPUs, memory and
// the versions of what ran, so figures in a generated doc say what they came from.
func Machine(versions map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- CPUs: %d, memory: %s\n", runtime.NumCPU(), memTotal())
	keys := make([]string, 0, len(versions))
	for k := range versions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "- %s: %s\n", k, versions[k])
	}
	return b.String()
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			var kb float64
			if _, err := fmt.Sscan(f[1], &kb); err != nil {
				return "unknown"
			}
			return fmt.Sprintf("%.1f GiB", kb/1024/1024)
		}
	}
	return "unknown"
}
