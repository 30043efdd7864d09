package mediastore

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var day = time.Date(2026, 1, 14, 23, 30, 0, 0, time.FixedZone("UTC-5", -5*3600)) // 2026-01-15 in UTC

func newStorage(t *testing.T) *Storage {
	t.Helper()
	s, err := New(t.TempDir(), "/media/", "https://chat.example.com")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCleanNameGolden(t *testing.T) {
	for _, c := range cleanNameGolden {
		got, err := CleanName(c.in)
		if !c.ok {
			if !errors.Is(err, ErrInvalidName) {
				t.Errorf("CleanName(%q) = %q, %v; want ErrInvalidName", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestDecodeBase64Golden(t *testing.T) {
	for _, c := range base64Golden {
		got, err := DecodeBase64(c.in)
		if !c.ok || c.want == "" { // Python's error, or the zero-byte Divergence
			if !errors.Is(err, ErrInvalidData) {
				t.Errorf("DecodeBase64(%q) = %x, %v; want ErrInvalidData", c.in, got, err)
			}
			continue
		}
		if err != nil || hex.EncodeToString(got) != c.want {
			t.Errorf("DecodeBase64(%q) = %x, %v; want %s", c.in, got, err, c.want)
		}
		if n := DecodedLenUpperBound(c.in); len(got) > n {
			t.Errorf("DecodedLenUpperBound(%q) = %d < %d", c.in, n, len(got))
		}
	}
}

func TestSplitExt(t *testing.T) { // os.path.splitext
	for in, want := range map[string][2]string{
		".bashrc": {".bashrc", ""}, "archive.tar.gz": {"archive.tar", ".gz"}, "noext": {"noext", ""},
		"a.": {"a", "."}, "..a": {"..a", ""}, "...": {"...", ""}, "a..b": {"a.", ".b"}, ".a.b": {".a", ".b"}, "_.x": {"_", ".x"},
	} {
		if r, e := splitExt(in); r != want[0] || e != want[1] {
			t.Errorf("splitExt(%q) = %q, %q; want %q", in, r, e, want)
		}
	}
}

// TestSaveNamesGolden: Django's get_available_name(dir+name, max_length=100) with
// get_random_string patched to "XXXXXXX": a first save, then (taken != "") a
// second one of the same name.
func TestSaveNamesGolden(t *testing.T) {
	const dir = "chat_files/2026/01/15/"
	x := strings.Repeat
	for _, c := range []struct{ name, fresh, taken string }{
		{"hello_world.txt", "hello_world.txt", "hello_world_XXXXXXX.txt"},
		{"archive.tar.gz", "archive.tar.gz", "archive.tar_XXXXXXX.gz"},
		{"noext", "noext", "noext_XXXXXXX"},
		{".bashrc", ".bashrc", ".bashrc_XXXXXXX"},
		{"a.", "a.", "a_XXXXXXX."},
		{x("x", 78), x("x", 78), x("x", 70) + "_XXXXXXX"},
		{x("x", 79), x("x", 70) + "_XXXXXXX", ""},
		{x("x", 74) + ".txt", x("x", 74) + ".txt", x("x", 66) + "_XXXXXXX.txt"},
		{x("x", 75) + ".txt", x("x", 66) + "_XXXXXXX.txt", ""},
		{x("x", 100) + ".txt", x("x", 66) + "_XXXXXXX.txt", ""},
		{x("ф", 90) + ".jpg", x("ф", 66) + "_XXXXXXX.jpg", ""},
		{"a." + x("b", 76), "a." + x("b", 76), "error"},
		{"a." + x("b", 77), "error", ""},
		{"." + x("b", 80), "." + x("b", 69) + "_XXXXXXX", ""},
		{x("x", 300), x("x", 70) + "_XXXXXXX", ""},
	} {
		s := newStorage(t)
		s.suffix = func() string { return "XXXXXXX" }
		for i, want := range []string{c.fresh, c.taken} {
			if want == "" {
				break
			}
			got, err := s.Save(context.Background(), c.name, []byte("data"), day)
			if want == "error" {
				if !errors.Is(err, ErrNoAvailableName) {
					t.Errorf("save #%d of %q: %q, %v; want ErrNoAvailableName", i+1, c.name, got, err)
				}
				break
			}
			if err != nil || got != dir+want {
				t.Errorf("save #%d of %q: %q, %v; want %q", i+1, c.name, got, err, dir+want)
			}
		}
	}
}

var suffixed = regexp.MustCompile(`^chat_files/2026/01/15/(hello_world|archive\.tar|noext|фото_1)_[a-zA-Z0-9]{7}(\.txt|\.gz|\.jpg)?$`)

func TestSaveTwice(t *testing.T) {
	s := newStorage(t)
	for _, name := range []string{"hello world.txt", "archive.tar.gz", "noext", "фото 1.jpg"} {
		clean, err := CleanName(name)
		if err != nil {
			t.Fatal(err)
		}
		first, err := s.Save(context.Background(), clean, []byte("one"), day)
		if err != nil || first != "chat_files/2026/01/15/"+clean {
			t.Fatalf("first save of %q: %q, %v", name, first, err)
		}
		second, err := s.Save(context.Background(), clean, []byte("two"), day)
		if err != nil || !suffixed.MatchString(second) {
			t.Fatalf("second save of %q: %q, %v", name, second, err)
		}
		for rel, want := range map[string]string{first: "one", second: "two"} {
			full := filepath.Join(s.Root(), filepath.FromSlash(rel))
			if b, err := os.ReadFile(full); err != nil || string(b) != want {
				t.Errorf("%s holds %q, %v; want %q", rel, b, err, want)
			}
			if fi, err := os.Stat(full); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("%s mode: %v, %v", rel, fi.Mode(), err)
			}
		}
	}
}

func TestSaveConcurrentSameName(t *testing.T) {
	s := newStorage(t)
	const n = 32
	var wg sync.WaitGroup
	paths := make([]string, n)
	for i := range n {
		wg.Go(func() {
			rel, err := s.Save(context.Background(), "same.bin", []byte{byte(i)}, day)
			if err != nil {
				t.Error(err)
			}
			paths[i] = rel
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, rel := range paths {
		b, err := os.ReadFile(filepath.Join(s.Root(), rel))
		if seen[rel] || err != nil || !bytes.Equal(b, []byte{byte(i)}) {
			t.Errorf("save %d: %q (dup %v) holds %v, %v", i, rel, seen[rel], b, err)
		}
		seen[rel] = true
	}
}

func TestSaveRefusesUncleanNames(t *testing.T) {
	s := newStorage(t)
	for _, name := range []string{"", ".", "..", "../../etc/passwd", "a/b.png", `..\..\x`, "a\x00b", "hello world.txt", " x", "$"} {
		if rel, err := s.Save(context.Background(), name, []byte("x"), day); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Save(%q) = %q, %v; want ErrInvalidName", name, rel, err)
		}
	}
	if entries, _ := os.ReadDir(s.Root()); len(entries) != 0 {
		t.Errorf("root not empty: %v", entries)
	}
}

func TestSaveLongUnicodeFitsFilesystem(t *testing.T) {
	s := newStorage(t)
	name := strings.Repeat("𝐀", 78) // 78 characters fit varchar(100) but are 312 bytes
	rel, err := s.Save(context.Background(), name, []byte("x"), day)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Base(rel)
	if len(base) > 255 || len([]rune(rel)) > 100 || !strings.HasPrefix(base, "𝐀") {
		t.Errorf("saved as %q (%d bytes)", rel, len(base))
	}
}

func TestSaveHonoursContext(t *testing.T) {
	s := newStorage(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Save(ctx, "a.txt", []byte("x"), day); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if entries, _ := os.ReadDir(s.Root()); len(entries) != 0 {
		t.Errorf("wrote despite cancelled context: %v", entries)
	}
}

func TestSaveRefusesSymlinkOutOfRoot(t *testing.T) {
	s := newStorage(t)
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(s.Root(), "chat_files")); err != nil {
		t.Skip(err)
	}
	if rel, err := s.Save(context.Background(), "a.txt", []byte("x"), day); err == nil {
		t.Errorf("saved %q through a symlink leaving the root", rel)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote outside the root: %v", entries)
	}
}

func TestRemove(t *testing.T) {
	s := newStorage(t)
	rel, err := s.Save(context.Background(), "a.txt", []byte("x"), day)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(rel); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), rel)); !os.IsNotExist(err) {
		t.Errorf("still there: %v", err)
	}
	victim := filepath.Join(filepath.Dir(s.Root()), "victim")
	if err := os.WriteFile(victim, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"../victim", "chat_files/../../victim", victim, "", ".", "/etc/passwd"} {
		if err := s.Remove(bad); err == nil {
			t.Errorf("Remove(%q) succeeded", bad)
		}
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("victim removed: %v", err)
	}
}

func TestURL(t *testing.T) { // values printed by django.utils.encoding.filepath_to_uri
	s := newStorage(t)
	for in, want := range map[string]string{
		"chat_files/2026/01/14/фото_1.jpg":                   "chat_files/2026/01/14/%D1%84%D0%BE%D1%82%D0%BE_1.jpg",
		`chat_files/2026/01/14/a b#?%&+=;:@$,[]"<>'!*()~_.-`: `chat_files/2026/01/14/a%20b%23%3F%25%26%2B%3D%3B%3A%40%24%2C%5B%5D%22%3C%3E'!*()~_.-`,
		`a\b`:   "a/b",
		"x%2F":  "x%252F",
		"/lead": "lead", // FileSystemStorage.url strips leading slashes
	} {
		if got := s.URL(in); got != "https://chat.example.com/media/"+want {
			t.Errorf("URL(%q) = %q", in, got)
		}
	}
	s2, err := New(t.TempDir(), "/files", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.URL("a.txt"); got != "/files/a.txt" {
		t.Errorf("URL with MEDIA_URL lacking '/': %q", got)
	}
}

func TestDetectType(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"photo.jpg", png, "image/png"}, // content wins over the name
		{"notes.txt", []byte("hello"), "text/plain"},
		{"data.json", []byte(`{"a":1}`), "application/json"},
		{"doc.pdf", []byte{0, 1, 2, 3}, "application/pdf"},
		{"blob", []byte{0, 1, 2, 3}, "application/octet-stream"},
		{".bashrc", []byte("export A=1"), "text/plain"},
		{"page.html", []byte("<html><body>x"), "text/html"},
	} {
		if got := DetectType(c.name, c.data); got != c.want {
			t.Errorf("DetectType(%q) = %q; want %q", c.name, got, c.want)
		}
	}
}

func TestNewCreatesRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "a", "b")
	s, err := New(root, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() || !filepath.IsAbs(s.Root()) {
		t.Fatalf("root %q: %v", s.Root(), err)
	}
	if _, err := New("", "", ""); err == nil {
		t.Error("New with an empty root succeeded")
	}
}

func FuzzCleanNameSave(f *testing.F) {
	for _, c := range cleanNameGolden {
		f.Add(c.in)
	}
	s, err := New(f.TempDir(), "/media/", "")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		clean, err := CleanName(name)
		if err != nil {
			return
		}
		if strings.ContainsAny(clean, "/\\\x00") || clean == "." || clean == ".." {
			t.Fatalf("CleanName(%q) = %q", name, clean)
		}
		if again, err := CleanName(clean); err != nil || again != clean {
			t.Fatalf("CleanName not idempotent: %q -> %q -> %q, %v", name, clean, again, err)
		}
		rel, err := s.Save(context.Background(), clean, nil, day)
		if err != nil {
			if errors.Is(err, ErrNoAvailableName) {
				return
			}
			t.Fatalf("Save(%q): %v", clean, err)
		}
		full := filepath.Join(s.Root(), filepath.FromSlash(rel))
		if !strings.HasPrefix(full, s.Root()+string(filepath.Separator)+"chat_files"+string(filepath.Separator)) ||
			filepath.Dir(full) != filepath.Join(s.Root(), "chat_files", "2026", "01", "15") || len([]rune(rel)) > 100 {
			t.Fatalf("Save(%q) = %q", clean, rel)
		}
		if err := s.Remove(rel); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzDecodeBase64(f *testing.F) {
	for _, c := range base64Golden {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := DecodeBase64(s)
		if err == nil && (len(b) == 0 || len(b) > DecodedLenUpperBound(s)) {
			t.Fatalf("DecodeBase64(%q) = %d bytes, bound %d", s, len(b), DecodedLenUpperBound(s))
		}
	})
}
