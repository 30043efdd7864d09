// Package docs_test checks the repository's Markdown: every relative link
// of README.md, CONTRIBUTING.md and docs/*.md names a file of the
// repository, and every #anchor a heading of its target, as GitHub renders
// them; and docs/PROTOCOL.md keeps every section of the shared contract it
// is copied from. It reads files only: no network, no services.
package docs_test

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRelativeLinks fails once for every relative link whose file is not in
// the repository (a path that leaves it counts as missing: a plain clone
// has nothing beside it), and for every #anchor of a Markdown file that
// none of its headings produces.
func TestRelativeLinks(t *testing.T) {
	root := repoRoot(t)
	files := []string{"README.md"}
	if _, err := os.Stat(filepath.Join(root, "CONTRIBUTING.md")); err == nil {
		files = append(files, "CONTRIBUTING.md")
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		files = append(files, filepath.ToSlash(must(filepath.Rel(root, d))))
	}
	anchors := map[string]map[string]bool{} // by absolute path, read once
	anchorsOf := func(path string) (map[string]bool, error) {
		if a, ok := anchors[path]; ok {
			return a, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		a := headingAnchors(string(b))
		anchors[path] = a
		return a, nil
	}
	checked := 0
	for _, name := range files {
		src := filepath.Join(root, filepath.FromSlash(name))
		b, err := os.ReadFile(src)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, l := range markdownLinks(string(b)) {
			if !isRelative(l.dest) {
				continue
			}
			checked++
			if problem := checkLink(root, src, l.dest, anchorsOf); problem != "" {
				t.Errorf("%s:%d: link %q: %s", name, l.line, l.dest, problem)
			}
		}
	}
	t.Logf("%d files, %d relative links checked", len(files), checked)
}

// TestProtocolCopyHasContractSections checks that docs/PROTOCOL.md has every
// heading of the shared contract, when a shared/PROTOCOL.md lies beside the
// repository or beside one of the directories above it (a worktree may sit
// deeper than the main checkout). A plain clone has none: then it skips.
func TestProtocolCopyHasContractSections(t *testing.T) {
	root := repoRoot(t)
	shared := ""
	for dir := filepath.Dir(root); ; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, "shared", "PROTOCOL.md")
		if _, err := os.Stat(p); err == nil {
			shared = p
			break
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	if shared == "" {
		t.Skip("no shared/PROTOCOL.md beside the repository")
	}
	want, err := os.ReadFile(shared)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "docs", "PROTOCOL.md"))
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, h := range headings(string(got)) {
		have[h.raw] = true
	}
	for _, h := range headings(string(want)) {
		if !have[h.raw] {
			t.Errorf("docs/PROTOCOL.md lacks the section %q of %s", h.raw, shared)
		}
	}
}

// repoRoot is the directory holding go.mod, above the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// scheme matches a link that names its scheme (https:, mailto:, …).
var scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

func isRelative(dest string) bool {
	return dest != "" && !scheme.MatchString(dest) && !strings.HasPrefix(dest, "//")
}

// checkLink returns what is wrong with the relative link dest of the
// Markdown file src, or "".
func checkLink(root, src, dest string, anchorsOf func(string) (map[string]bool, error)) string {
	pathPart, anchor, _ := strings.Cut(dest, "#")
	pathPart, _, _ = strings.Cut(pathPart, "?")
	p, err := url.PathUnescape(pathPart)
	if err != nil {
		return "bad escape in path"
	}
	target := src
	switch {
	case p == "":
		// #anchor of the file itself
	case strings.HasPrefix(p, "/"):
		target = filepath.Join(root, filepath.FromSlash(p)) // GitHub: from the repository's root
	default:
		target = filepath.Join(filepath.Dir(src), filepath.FromSlash(p))
	}
	if rel, err := filepath.Rel(root, target); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "points outside the repository"
	}
	info, err := os.Stat(target)
	if err != nil {
		return "no such file in the repository"
	}
	if anchor == "" || info.IsDir() || !strings.EqualFold(filepath.Ext(target), ".md") {
		return "" // line anchors of source files (#L10) are GitHub's, not headings
	}
	a, err := anchorsOf(target)
	if err != nil {
		return err.Error()
	}
	if want, err := url.PathUnescape(anchor); err == nil && a[want] {
		return ""
	}
	return fmt.Sprintf("no heading of %s makes the anchor #%s", filepath.ToSlash(must(filepath.Rel(root, target))), anchor)
}

// link is one link of a Markdown file.
type link struct {
	line int
	dest string
}

var (
	// inlineLink is [text](dest) or [text](dest "title"), images too; the
	// text may hold one level of brackets.
	inlineLink = regexp.MustCompile(`\[(?:[^\[\]\\]|\\.|\[[^\[\]]*\])*\]\(\s*(<[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:"[^"]*"|'[^']*'|\([^)]*\)))?\s*\)`)
	// refDefinition is [label]: dest.
	refDefinition = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)`)
)

// markdownLinks returns the inline links and reference definitions outside
// fenced code blocks and code spans.
func markdownLinks(src string) []link {
	var out []link
	lines := strings.Split(src, "\n")
	for i, code := range fencedLines(lines) {
		if code {
			continue
		}
		line := lines[i]
		if m := refDefinition.FindStringSubmatch(line); m != nil {
			out = append(out, link{i + 1, strings.Trim(m[1], "<>")})
			continue
		}
		spans := codeSpans(line)
		for _, m := range inlineLink.FindAllStringSubmatchIndex(line, -1) {
			if inSpan(m[0], spans) || (m[0] > 0 && line[m[0]-1] == '\\') {
				continue
			}
			out = append(out, link{i + 1, strings.Trim(line[m[2]:m[3]], "<>")})
		}
	}
	return out
}

// fencedLines reports, for each line, whether it belongs to a fenced code
// block (the fences included).
func fencedLines(lines []string) []bool {
	code := make([]bool, len(lines))
	fence := ""
	for i, l := range lines {
		t := strings.TrimLeft(l, " \t")
		if fence != "" {
			code[i] = true
			if strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]+" \t") == "" {
				fence = ""
			}
			continue
		}
		for _, c := range []string{"`", "~"} {
			if strings.HasPrefix(t, c+c+c) {
				n := len(t) - len(strings.TrimLeft(t, c))
				fence = strings.Repeat(c, n)
				code[i] = true
				break
			}
		}
	}
	return code
}

// codeSpans returns the [start, end) byte ranges of the code spans of one
// line: a run of backticks up to the next run of the same length.
func codeSpans(line string) [][2]int {
	var spans [][2]int
	for i := 0; i < len(line); {
		if line[i] != '`' {
			i++
			continue
		}
		n := 0
		for i+n < len(line) && line[i+n] == '`' {
			n++
		}
		end := -1
		for j := i + n; j < len(line); {
			if line[j] != '`' {
				j++
				continue
			}
			m := 0
			for j+m < len(line) && line[j+m] == '`' {
				m++
			}
			if m == n {
				end = j + m
				break
			}
			j += m
		}
		if end < 0 {
			i += n // no closing run: literal backticks
			continue
		}
		spans = append(spans, [2]int{i, end})
		i = end
	}
	return spans
}

func inSpan(pos int, spans [][2]int) bool {
	for _, s := range spans {
		if pos >= s[0] && pos < s[1] {
			return true
		}
	}
	return false
}

// heading is one ATX heading: raw is its line without surrounding space
// and closing hashes ("## 5. Frames"), text its text.
type heading struct {
	raw, text string
}

var (
	atxHeading   = regexp.MustCompile(`^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	setextMarker = regexp.MustCompile(`^ {0,3}(=+|-+)[ \t]*$`)
	htmlAnchor   = regexp.MustCompile(`<a\s[^>]*(?:id|name)\s*=\s*"([^"]+)"`)
)

// headings returns the ATX and setext headings outside fenced code.
func headings(src string) []heading {
	var out []heading
	lines := strings.Split(src, "\n")
	code := fencedLines(lines)
	for i, l := range lines {
		if code[i] {
			continue
		}
		if m := atxHeading.FindStringSubmatch(l); m != nil {
			out = append(out, heading{raw: strings.TrimSpace(m[1] + " " + m[2]), text: m[2]})
			continue
		}
		// A setext underline turns the paragraph line above into a heading.
		if i > 0 && !code[i-1] && setextMarker.MatchString(l) {
			prev := strings.TrimSpace(lines[i-1])
			if prev != "" && !atxHeading.MatchString(lines[i-1]) && !strings.HasPrefix(prev, "|") &&
				!strings.HasPrefix(prev, "- ") && !strings.HasPrefix(prev, "* ") && !setextMarker.MatchString(lines[i-1]) {
				out = append(out, heading{raw: prev, text: prev})
			}
		}
	}
	return out
}

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown file (duplicates numbered -1, -2, …), and those of HTML
// id/name attributes.
func headingAnchors(src string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	for _, h := range headings(src) {
		slug := slugify(h.text)
		if n := seen[slug]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
	}
	for _, m := range htmlAnchor.FindAllStringSubmatch(src, -1) {
		anchors[m[1]] = true
	}
	return anchors
}

var (
	mdLink        = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTag       = regexp.MustCompile(`</?[A-Za-z][^>]*>`)
	underscoreEmp = regexp.MustCompile(`(^|[^\p{L}\p{N}_])_+([^_]+?)_+($|[^\p{L}\p{N}_])`)
	notSlugChar   = regexp.MustCompile(`[^\p{L}\p{M}\p{N}\p{Pc} -]`)
)

// slugify is GitHub's anchor of a heading's text: the rendered text
// (Markdown markup gone, code spans kept as written), lower-cased, with
// every character but letters, digits, '_', '-' and spaces dropped and
// each space turned into '-'.
func slugify(text string) string {
	var b strings.Builder
	spans := codeSpans(text)
	last := 0
	plain := func(s string) string {
		s = mdLink.ReplaceAllString(s, "$1")
		s = htmlTag.ReplaceAllString(s, "")
		return underscoreEmp.ReplaceAllString(s, "$1$2$3")
	}
	for _, s := range spans {
		b.WriteString(plain(text[last:s[0]]))
		b.WriteString(strings.Trim(text[s[0]:s[1]], "`"))
		last = s[1]
	}
	b.WriteString(plain(text[last:]))
	s := strings.ToLower(strings.TrimSpace(b.String()))
	s = notSlugChar.ReplaceAllString(s, "")
	return strings.ReplaceAll(s, " ", "-")
}

// README's Metrics section names every series the code declares.
func TestReadmeListsEveryMetric(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	declared := regexp.MustCompile(`Name:\s*"(sidecar_[a-z_]+)"`)
	found := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "tests") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range declared.FindAllSubmatch(src, -1) {
			found++
			if !strings.Contains(string(readme), "`"+string(m[1])) {
				t.Errorf("README does not list the metric %s (declared in %s)", m[1], path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 20 {
		t.Fatalf("found only %d metric declarations; the pattern is stale", found)
	}
}

// TestCIRunsReadmeTestCommand checks that .ci/run runs the test command
// README's Contributing section gives, so the two cannot drift apart.
func TestCIRunsReadmeTestCommand(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, contributing, ok := strings.Cut(string(readme), "\n## Contributing\n")
	if !ok {
		t.Fatal("README.md has no Contributing section")
	}
	m := regexp.MustCompile("(?s)```sh\n([^\n]+)\n```").FindStringSubmatch(contributing)
	if m == nil {
		t.Fatal("README.md's Contributing section shows no test command")
	}
	command := strings.TrimSpace(m[1])
	ci, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^(exec )?` + regexp.QuoteMeta(command) + `\b`).Match(ci) {
		t.Errorf(".ci/run does not run README's test command %q:\n%s", command, ci)
	}
}
