// Package mediastore stores the files clients send in file_message frames exactly
// where Django's FileSystemStorage would (PROTOCOL 5.2): MEDIA_ROOT/chat_files/
// YYYY/MM/DD/<name>, with Django's name cleaning, collision suffixes and
// varchar(100) truncation, and builds their public URLs.
package mediastore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	uploadDir    = "chat_files" // FileField(upload_to='chat_files/%Y/%m/%d/')
	maxPathLen   = 100          // chat_fileattachment.file is varchar(100), counted in characters
	maxNameBytes = 255          // NAME_MAX: where Django would fail with ENAMETOOLONG, the root is trimmed further
	maxTypeLen   = 100          // chat_fileattachment.file_type is varchar(100)
	suffixLen    = 7            // get_random_string(7)
	maxAttempts  = 100          // O_EXCL collisions tolerated before giving up (Django loops forever)
	dirPerm      = 0o755
	filePerm     = 0o644 // FILE_UPLOAD_PERMISSIONS default
	defaultMedia = "/media/"
)

var (
	// ErrInvalidName: the client's file name is empty, ".", ".." or cleans to nothing.
	ErrInvalidName = errors.New("mediastore: invalid file name")
	// ErrInvalidData: the file is not base64 as Python's base64.b64decode reads it, or is empty.
	ErrInvalidData = errors.New("mediastore: invalid file data")
	// ErrNoAvailableName: the name cannot be made to fit varchar(100) (Django's SuspiciousFileOperation).
	ErrNoAvailableName = errors.New("mediastore: no available file name fits the column")
)

// Storage is a Django FileSystemStorage-compatible store rooted at MEDIA_ROOT.
// It is safe for concurrent use.
type Storage struct {
	root    string        // absolute MEDIA_ROOT
	baseURL string        // PUBLIC_BASE_URL + MEDIA_URL, ending in '/'
	suffix  func() string // collision suffix; tests replace it
}

// New returns a Storage rooted at root (created if missing). mediaURL is Django's
// MEDIA_URL ("/media/" when empty; a missing trailing slash is added, as Django
// requires one); publicBaseURL is prefixed to every URL.
func New(root, mediaURL, publicBaseURL string) (*Storage, error) {
	if root == "" {
		return nil, errors.New("mediastore: empty media root")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("mediastore: media root: %w", err)
	}
	if err := os.MkdirAll(abs, dirPerm); err != nil {
		return nil, fmt.Errorf("mediastore: create media root: %w", err)
	}
	if mediaURL == "" {
		mediaURL = defaultMedia
	} else if !strings.HasSuffix(mediaURL, "/") {
		mediaURL += "/"
	}
	return &Storage{root: abs, baseURL: publicBaseURL + mediaURL, suffix: randomSuffix}, nil
}

// Root returns the absolute media root.
func (s *Storage) Root() string { return s.root }

// CleanName keeps the part of name after its last '/' or '\' (a Divergence from
// Django, which made sub-directories) and cleans it like Django 3.2's
// get_valid_filename: strip Python whitespace, turn ' ' into '_', drop every
// character outside [-\w.] (\w: Unicode letters and numbers, and '_').
// "", "." and ".." before or after cleaning are ErrInvalidName.
func CleanName(name string) (string, error) {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	if name == "" || name == "." || name == ".." {
		return "", ErrInvalidName
	}
	name = strings.TrimFunc(name, isPySpace)
	var b strings.Builder
	for _, r := range name { // invalid UTF-8 decodes to RuneError, which is dropped
		switch {
		case r == ' ':
			b.WriteByte('_')
		case r == '-' || r == '.' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r):
			b.WriteRune(r)
		}
	}
	clean := b.String()
	if clean == "" || clean == "." || clean == ".." {
		return "", ErrInvalidName
	}
	return clean, nil
}

// isPySpace is Python's str.isspace: Go's White_Space set plus U+001C..U+001F.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// splitExt is Python's os.path.splitext for a name without separators: the
// extension starts at the last dot, unless only dots precede it (".bashrc").
func splitExt(name string) (root, ext string) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || strings.Trim(name[:i], ".") == "" {
		return name, ""
	}
	return name[:i], name[i:]
}

// fits reports whether rel (whose last element is name) fits the column and the filesystem.
func fits(rel, name string) bool {
	return utf8.RuneCountInString(rel) <= maxPathLen && len(name) <= maxNameBytes
}

// Save writes data to chat_files/YYYY/MM/DD/<name> (UTC date of now) under the
// root, as Django's FileSystemStorage.save with max_length=100 would, and returns
// the path relative to the root with forward slashes. name must already be
// clean (CleanName). If the path is taken, or too long, the name gets "_" and 7
// random letters/digits before its extension, the root of the name being
// trimmed from its end to fit (ErrNoAvailableName if nothing is left).
func (s *Storage) Save(ctx context.Context, name string, data []byte, now time.Time) (string, error) {
	if clean, err := CleanName(name); err != nil || clean != name {
		return "", ErrInvalidName
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	root, err := os.OpenRoot(s.root)
	if err != nil {
		return "", fmt.Errorf("mediastore: open media root: %w", err)
	}
	defer root.Close()
	dir := uploadDir + "/" + now.UTC().Format("2006/01/02")
	if err := root.MkdirAll(dir, dirPerm); err != nil {
		return "", fmt.Errorf("mediastore: create %s: %w", dir, err)
	}

	fileRoot, ext := splitExt(name)
	rel := dir + "/" + name
	for attempt := 0; ; attempt++ {
		if attempt > 0 || !fits(rel, name) {
			if attempt >= maxAttempts {
				return "", fmt.Errorf("mediastore: save %s: %w", rel, ErrNoAvailableName)
			}
			// get_available_name: trim fileRoot by the overflow, then a fresh suffix.
			placeholder := "_" + strings.Repeat("0", suffixLen) // the suffix's length, drawn once it fits
			for fileRoot != "" && !fits(dir+"/"+fileRoot+placeholder+ext, fileRoot+placeholder+ext) {
				_, size := utf8.DecodeLastRuneInString(fileRoot)
				fileRoot = fileRoot[:len(fileRoot)-size]
			}
			if fileRoot == "" {
				return "", fmt.Errorf("mediastore: save %s: %w", name, ErrNoAvailableName)
			}
			name = fileRoot + "_" + s.suffix() + ext
			rel = dir + "/" + name
		}
		if err := s.checkInside(rel); err != nil {
			return "", err
		}
		if err := ctx.Err(); err != nil {
			return "", err
		}
		f, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("mediastore: create %s: %w", rel, err)
		}
		_, err = f.Write(data)
		if err == nil {
			err = f.Chmod(filePerm) // Django chmods: the umask does not apply
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = root.Remove(rel)
			return "", fmt.Errorf("mediastore: write %s: %w", rel, err)
		}
		return rel, nil
	}
}

// checkInside refuses a relative path that would resolve outside the root.
func (s *Storage) checkInside(rel string) error {
	local := filepath.FromSlash(rel)
	if !filepath.IsLocal(local) {
		return fmt.Errorf("mediastore: path %q escapes the media root", rel)
	}
	full := filepath.Join(s.root, local)
	r, err := filepath.Rel(s.root, full)
	if err != nil || !filepath.IsLocal(r) || !strings.HasPrefix(full, s.root+string(filepath.Separator)) {
		return fmt.Errorf("mediastore: path %q escapes the media root", rel)
	}
	return nil
}

// Remove deletes a file written by Save (when the database transaction that
// referenced it failed). Paths that escape the root are refused.
func (s *Storage) Remove(relPath string) error {
	if err := s.checkInside(relPath); err != nil {
		return err
	}
	root, err := os.OpenRoot(s.root)
	if err != nil {
		return fmt.Errorf("mediastore: open media root: %w", err)
	}
	defer root.Close()
	if err := root.Remove(filepath.FromSlash(relPath)); err != nil {
		return fmt.Errorf("mediastore: remove %s: %w", relPath, err)
	}
	return nil
}

// URL is PUBLIC_BASE_URL + MEDIA_URL + relPath, the path quoted like Django's
// filepath_to_uri (urllib.parse.quote(path, safe="/~!*()'")).
func (s *Storage) URL(relPath string) string {
	return s.baseURL + filepathToURI(strings.TrimLeft(strings.ReplaceAll(relPath, `\`, "/"), "/"))
}

func filepathToURI(p string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_.-~/!*()'", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// randomSuffix is Django's get_random_string(7): letters and digits from crypto/rand.
func randomSuffix() string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	out := make([]byte, 0, suffixLen)
	var buf [16]byte
	for len(out) < suffixLen {
		rand.Read(buf[:]) // never fails (Go 1.24+)
		for _, c := range buf {
			if c < 248 && len(out) < suffixLen { // 248 = 4*62: no modulo bias
				out = append(out, chars[c%62])
			}
		}
	}
	return string(out)
}

// DetectType returns the media type of a file for chat_fileattachment.file_type:
// sniffed from data, or from the name's extension when sniffing only says
// application/octet-stream or text/plain; without parameters, at most 100 bytes.
func DetectType(name string, data []byte) string {
	t := mediaType(http.DetectContentType(data))
	if t == "application/octet-stream" || t == "text/plain" {
		if _, ext := splitExt(name); ext != "" {
			if byExt := mediaType(mime.TypeByExtension(ext)); byExt != "" {
				t = byExt
			}
		}
	}
	if len(t) > maxTypeLen {
		return "application/octet-stream"
	}
	return t
}

func mediaType(t string) string {
	t, _, _ = strings.Cut(t, ";")
	return strings.ToLower(strings.TrimSpace(t))
}
