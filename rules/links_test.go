package rules

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/selfheal/selfheal/internal/testutil"
)

// runbooks is where every alert's runbook lives, as a path from the repository's root. The
// project has no public host, so runbook_url is repository-relative: it is the same in every
// clone and fork, a person follows it from a checkout or a Git host's file view, and this test
// can check it against the file itself.
const runbooks = "docs/runbooks.md"

// TestEveryAlertLinksItsRunbook holds the rules to the monitoring-mixins convention: each alert
// carries runbook_url, and it points at the alert's own heading in docs/runbooks.md.
func TestEveryAlertLinksItsRunbook(t *testing.T) {
	root := testutil.RepoRoot(t)
	docs := newMarkdownIndex(root)
	forEachAlert(t, func(r rule, where string) {
		url := r.Annotations["runbook_url"]
		if want := runbooks + "#" + headingAnchor(r.Alert); url != want {
			t.Errorf("%s: runbook_url is %q, want %q", where, url, want)
			return
		}
		// Resolved as a link written at the repository's root.
		if err := docs.check(filepath.Join(root, "README.md"), url); err != nil {
			t.Errorf("%s: runbook_url %s", where, err)
		}
	})
}

// TestDocLinksResolve fails on a link in README.md or docs/*.md that points at a file or a
// heading that does not exist, so moving or renaming a section cannot silently break the docs
// (or the runbook links the alerts carry).
func TestDocLinksResolve(t *testing.T) {
	root := testutil.RepoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(root, "README.md"))
	docs := newMarkdownIndex(root)
	links := 0
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range markdownLinks(string(b)) {
			links++
			if err := docs.check(f, l.dest); err != nil {
				t.Errorf("%s:%d: link %s", rel, l.line, err)
			}
		}
	}
	if links == 0 {
		t.Fatal("found no links at all: the link parser is broken")
	}
}

func TestHeadingAnchor(t *testing.T) {
	for heading, want := range map[string]string{
		"ServiceMemoryHigh": "servicememoryhigh",
		"Run the stack":     "run-the-stack",
		"`global`":          "global",
		"Playbook keys (also valid under `defaults:` unless marked)":    "playbook-keys-also-valid-under-defaults-unless-marked",
		"`http`: call a recovery endpoint":                              "http-call-a-recovery-endpoint",
		"Reaching the engine: DOCKER_HOST and the socket proxy":         "reaching-the-engine-docker_host-and-the-socket-proxy",
		"Recovery endpoints: what an operator's API can and cannot fix": "recovery-endpoints-what-an-operators-api-can-and-cannot-fix",
		"Dependencies, breakers, degradation":                           "dependencies-breakers-degradation",
		"A [linked](other.md) heading":                                  "a-linked-heading",
		"Alerts, rules -- and routing":                                  "alerts-rules----and-routing",
	} {
		if got := headingAnchor(heading); got != want {
			t.Errorf("headingAnchor(%q) = %q, want %q", heading, got, want)
		}
	}
}

// TestLinkCheckFindsBrokenLinks shows the check can fail: each broken kind of link is reported,
// and what GitHub would resolve is not.
func TestLinkCheckFindsBrokenLinks(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("docs/target.md", "# Title\n\n## Same\n\n## Same\n\n```sh\n# not a heading\n```\n<a id=\"custom\"></a>\n")
	write("docs/dir/keep", "")
	write("README.md", strings.Join([]string{
		"[ok](docs/target.md)", "[ok](docs/target.md#title)", "[dup](docs/target.md#same-1)",
		"[dir](docs/dir/)", "[html](docs/target.md#custom)", "[web](https://example.org/x#y)",
		"[self](#readme-heading)", "# README heading",
		"[missing file](docs/nope.md)", "[missing heading](docs/target.md#nope)",
		"[code is no heading](docs/target.md#not-a-heading)", "[no third](docs/target.md#same-2)",
		"[escape](../outside.md)", "[self missing](#nope)",
		"`[in code](docs/nope.md)`", "```", "[in a block](docs/nope.md)", "```",
		"[ref]: docs/gone.md",
	}, "\n"))
	docs := newMarkdownIndex(root)
	b, _ := os.ReadFile(filepath.Join(root, "README.md"))
	var got []string
	for _, l := range markdownLinks(string(b)) {
		if err := docs.check(filepath.Join(root, "README.md"), l.dest); err != nil {
			got = append(got, fmt.Sprintf("%d: %v", l.line, err))
		}
	}
	want := []string{
		`9: "docs/nope.md": no such file`,
		`10: "docs/target.md#nope": no heading with anchor #nope in docs/target.md`,
		`11: "docs/target.md#not-a-heading": no heading with anchor #not-a-heading in docs/target.md`,
		`12: "docs/target.md#same-2": no heading with anchor #same-2 in docs/target.md`,
		`13: "../outside.md": points outside the repository`,
		`14: "#nope": no heading with anchor #nope in README.md`,
		`19: "docs/gone.md": no such file`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n got %q\nwant %q", got, want)
	}
}

type mdLink struct {
	line int
	dest string
}

var (
	fence       = regexp.MustCompile("^ {0,3}(```|~~~)")
	codeSpan    = regexp.MustCompile("`+[^`]*`+")
	inlineLink  = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)`)
	refDef      = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?`)
	atxHeading  = regexp.MustCompile(`^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$`)
	htmlAnchor  = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	linkText    = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
	schemeStart = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// markdownLines calls fn for each line outside fenced code blocks, with its 1-based number.
func markdownLines(text string, fn func(n int, line string)) {
	inFence := ""
	for i, line := range strings.Split(text, "\n") {
		if m := fence.FindStringSubmatch(line); m != nil {
			switch {
			case inFence == "":
				inFence = m[1]
			case inFence == m[1]:
				inFence = ""
			}
			continue
		}
		if inFence == "" {
			fn(i+1, line)
		}
	}
}

// markdownLinks lists the inline links, images and reference definitions of a Markdown text,
// leaving out code blocks and code spans, where brackets are only text.
func markdownLinks(text string) []mdLink {
	var links []mdLink
	markdownLines(text, func(n int, line string) {
		if m := refDef.FindStringSubmatch(line); m != nil {
			links = append(links, mdLink{n, m[1]})
			return
		}
		for _, m := range inlineLink.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, ""), -1) {
			links = append(links, mdLink{n, m[1]})
		}
	})
	return links
}

// headingAnchor is the anchor GitHub gives a heading: the rendered text in lower case, spaces
// turned into '-', and every character that is neither a letter, a digit, '-' nor '_' dropped.
func headingAnchor(heading string) string {
	text := linkText.ReplaceAllString(heading, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// markdownIndex knows the anchors of the repository's Markdown files, read once each.
type markdownIndex struct {
	root    string
	anchors map[string]map[string]bool
}

func newMarkdownIndex(root string) *markdownIndex {
	return &markdownIndex{root: filepath.Clean(root), anchors: map[string]map[string]bool{}}
}

func (x *markdownIndex) anchorsOf(path string) (map[string]bool, error) {
	if a, ok := x.anchors[path]; ok {
		return a, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	a := map[string]bool{}
	seen := map[string]int{}
	markdownLines(string(b), func(_ int, line string) {
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			a[m[1]] = true
		}
		// Only "#" headings count: the docs write no underlined (setext) ones.
		m := atxHeading.FindStringSubmatch(line)
		if m == nil {
			return
		}
		// GitHub numbers repeated headings: the second "Tests" is #tests-1.
		slug := headingAnchor(m[1])
		if n := seen[slug]; n > 0 {
			a[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			a[slug] = true
		}
		seen[slug]++
	})
	x.anchors[path] = a
	return a, nil
}

// check resolves dest, a link written in the file from, against the repository: the file (or
// directory) must exist inside it, and a #fragment must name a heading of that Markdown file.
// Links with a scheme (https:, mailto:) are not followed.
func (x *markdownIndex) check(from, dest string) error {
	if dest == "" || schemeStart.MatchString(dest) || strings.HasPrefix(dest, "//") {
		return nil
	}
	path, frag, _ := strings.Cut(dest, "#")
	var target string
	switch {
	case path == "":
		target = from
	case strings.HasPrefix(path, "/"):
		target = filepath.Join(x.root, filepath.FromSlash(path))
	default:
		target = filepath.Join(filepath.Dir(from), filepath.FromSlash(path))
	}
	rel, err := filepath.Rel(x.root, target)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("%q: points outside the repository", dest)
	}
	info, err := os.Stat(target)
	if err != nil {
		return fmt.Errorf("%q: no such file", dest)
	}
	if frag == "" {
		return nil
	}
	if info.IsDir() || !strings.HasSuffix(target, ".md") {
		return fmt.Errorf("%q: a #fragment needs a Markdown file", dest)
	}
	anchors, err := x.anchorsOf(target)
	if err != nil {
		return fmt.Errorf("%q: %v", dest, err)
	}
	if !anchors[frag] {
		return fmt.Errorf("%q: no heading with anchor #%s in %s", dest, frag, filepath.ToSlash(rel))
	}
	return nil
}
