package docker

import (
	"os"
	"regexp"
	"strings"
)

var (
	// The engine bind-mounts /etc/hostname, /etc/hosts and /etc/resolv.conf from the
	// container's own directory, whatever the cgroup version.
	mountinfoID = regexp.MustCompile(`/containers/([0-9a-f]{64})/(?:hostname|hosts|resolv\.conf)$`)
	// cgroup v1 paths: /docker/<id>, /system.slice/docker-<id>.scope, kubepods .../<id>.
	cgroupID = regexp.MustCompile(`(?:^|[/-])([0-9a-f]{64})(?:\.scope)?$`)
)

// DetectSelfContainerID finds the id of the container this process runs in, and where it was
// found; empty when not in a container (or it cannot tell).
func DetectSelfContainerID() (id, source string) {
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		if id := selfFromMountinfo(string(b)); id != "" {
			return id, "/proc/self/mountinfo"
		}
	}
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		if id := selfFromCgroup(string(b)); id != "" {
			return id, "/proc/self/cgroup"
		}
	}
	// Docker's default hostname is the short id; a chosen hostname is no evidence either way.
	if h, err := os.Hostname(); err == nil && isHexID(h, 12) && len(h) == 12 {
		if _, err := os.Stat("/.dockerenv"); err == nil {
			return h, "hostname"
		}
	}
	return "", ""
}

// selfFromMountinfo only trusts mounts on the container's own /etc files: on the host, the
// mount table lists other containers' directories too (their shm mounts).
func selfFromMountinfo(s string) string {
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		switch f[4] {
		case "/etc/hostname", "/etc/hosts", "/etc/resolv.conf":
		default:
			continue
		}
		if m := mountinfoID.FindStringSubmatch(f[3]); m != nil {
			return m[1]
		}
	}
	return ""
}

func selfFromCgroup(s string) string {
	for _, line := range strings.Split(s, "\n") {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if m := cgroupID.FindStringSubmatch(strings.TrimSpace(parts[2])); m != nil {
			return m[1]
		}
	}
	return ""
}
