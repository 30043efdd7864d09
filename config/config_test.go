package config

import (
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func setenv(t *testing.T, kv ...string) {
	t.Helper()
	for i := 0; i < len(kv); i += 2 {
		t.Setenv(kv[i], kv[i+1])
	}
}

func TestLoadDefaults(t *testing.T) {
	setenv(t, "DATABASE_URL", "postgres://u@h/db", "SECRET_KEY", "k")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.ListenAddr != ":8001" || c.JWTAlgorithm != "HS256" || c.SigningKey() != "k" || c.MaxFrameBytes != 16<<20 ||
		c.MaxFileBytes != 10<<20 || c.PingInterval != 20*time.Second || c.PingTimeout != 30*time.Second ||
		c.MessageTable != "chat_message" || c.MediaURL != "/media/" {
		t.Errorf("defaults: %+v", c)
	}
}

func TestLoadValues(t *testing.T) {
	setenv(t, "DATABASE_URL", "postgresql://u@h/db", "SECRET_KEY", "k", "SIMPLE_JWT_SIGNING_KEY", "s",
		"SIMPLE_JWT_LEEWAY", "1.5", "ALLOWED_HOSTS", "a.com,.b.org", "DB_COLUMNS", "message.sender_id:author_id",
		"LOG_LEVEL", "debug")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.SigningKey() != "s" || time.Duration(c.JWTLeeway) != 1500*time.Millisecond ||
		!reflect.DeepEqual(c.AllowedHosts, []string{"a.com", ".b.org"}) || c.DBColumns["message.sender_id"] != "author_id" {
		t.Errorf("values: %+v", c)
	}
	t.Setenv("SIMPLE_JWT_LEEWAY", "2m")
	if c, err := Load(); err != nil || time.Duration(c.JWTLeeway) != 2*time.Minute {
		t.Errorf("leeway as duration: %v %v", c.JWTLeeway, err)
	}
}

// A bad or missing value is one line naming the variable.
func TestLoadErrorsNameTheVariable(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"DATABASE_URL", "", "DATABASE_URL"},
		{"DATABASE_URL", "mysql://x/y", "DATABASE_URL"},
		{"MAX_FRAME_BYTES", "abc", "MAX_FRAME_BYTES"},
		{"MAX_FRAME_BYTES", "0", "MAX_FRAME_BYTES"},
		{"SEND_QUEUE_BYTES", "-1", "SEND_QUEUE_BYTES"},
		{"SEND_QUEUE_BYTES", "1073741824", "SEND_QUEUE_BYTES"},
		{"MEMORY_LIMIT", "lots", "MEMORY_LIMIT"},
		{"MEMORY_LIMIT", "-5MiB", "MEMORY_LIMIT"},
		{"MAX_TEXT_FRAME_BYTES", "99999999", "MAX_TEXT_FRAME_BYTES"},
		{"FILE_BURST_BYTES", "1KiB", "FILE_BURST_BYTES"},
		{"MAX_USER_CONNECTIONS", "-1", "MAX_USER_CONNECTIONS"},
		{"DB_TIMEOUT", "0s", "DB_TIMEOUT"},
		{"PING_INTERVAL", "20", "PING_INTERVAL"},
		{"SIMPLE_JWT_LEEWAY", "soon", "SIMPLE_JWT_LEEWAY"},
		{"SIMPLE_JWT_LEEWAY", "-1", "SIMPLE_JWT_LEEWAY"},
		{"LOG_LEVEL", "loud", "LOG_LEVEL"},
		{"LOG_FORMAT", "xml", "LOG_FORMAT"},
		{"SECRET_KEY", "", "SECRET_KEY"},
		{"PUBLIC_BASE_URL", "not a url", "PUBLIC_BASE_URL"},
		{"MEDIA_URL", "media", "MEDIA_URL"},
		{"CHANNEL_LAYER_CHANNEL_CAPACITY", "specific.*", "CHANNEL_LAYER_CHANNEL_CAPACITY"},
		{"CHANNEL_LAYER_CHANNEL_CAPACITY", "a=0", "CHANNEL_LAYER_CHANNEL_CAPACITY"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			setenv(t, "DATABASE_URL", "postgres://u@h/db", "SECRET_KEY", "k")
			if tc.value == "" {
				os.Unsetenv(tc.name)
			} else {
				t.Setenv(tc.name, tc.value)
			}
			_, err := Load()
			if err == nil {
				t.Fatal("no error")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line naming %s", msg, tc.want)
			}
		})
	}
}

func TestBytes(t *testing.T) {
	for in, want := range map[string]Bytes{"1048576": 1 << 20, "192MiB": 192 << 20, "64 KiB": 64 << 10, "2GiB": 2 << 30, "0": 0, "12B": 12} {
		var b Bytes
		if err := b.Decode(in); err != nil || b != want {
			t.Errorf("Decode(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "1.5MiB", "MiB", "-1", "1TiB"} {
		var b Bytes
		if err := b.Decode(in); err == nil {
			t.Errorf("Decode(%q) = %d, want an error", in, b)
		}
	}
	if s := Bytes(192 << 20).String(); s != "192MiB" {
		t.Errorf("String() = %s", s)
	}
}

// Default is what Load gives with no variable set, and reads nothing.
func TestDefault(t *testing.T) {
	setenv(t, "DATABASE_URL", "postgres://u@h/db", "SECRET_KEY", "k")
	loaded, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LISTEN_ADDR", ":9999")
	c := Default()
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "DATABASE_URL:") {
		t.Errorf("Default().Validate() = %v, want DATABASE_URL required", err)
	}
	c.DatabaseURL, c.SecretKey = loaded.DatabaseURL, loaded.SecretKey
	if !reflect.DeepEqual(c, loaded) {
		t.Errorf("Default() = %+v\nLoad()    = %+v", c, loaded)
	}
}

func TestChannelCapacity(t *testing.T) {
	setenv(t, "DATABASE_URL", "postgres://u@h/db", "SECRET_KEY", "k",
		"CHANNEL_LAYER_CHANNEL_CAPACITY", "specific.*=500,http.request=20")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	rules, err := c.ChannelCapacity()
	want := []CapacityRule{{"specific.*", 500}, {"http.request", 20}}
	if err != nil || !reflect.DeepEqual(rules, want) {
		t.Errorf("ChannelCapacity() = %v, %v; want %v", rules, err, want)
	}
}

// The README's configuration table lists every variable with its default.
func TestReadmeTable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\| *([^|]*?) *\\|").FindAllStringSubmatch(string(readme), -1) {
		rows[m[1]] = strings.Trim(strings.TrimSpace(m[2]), "`")
	}
	typ := reflect.TypeOf(Config{})
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name := f.Tag.Get("envconfig")
		got, ok := rows[name]
		if !ok {
			t.Errorf("README has no row for %s", name)
			continue
		}
		if def := f.Tag.Get("default"); def != "" && got != def {
			t.Errorf("README default of %s is %q, code says %q", name, got, def)
		}
		delete(rows, name)
	}
	for name := range rows {
		t.Errorf("README documents %s, which the code does not read", name)
	}
}

// The logged configuration shows no secret: keys, and passwords in the
// URLs' user info or query.
func TestLogValueMasksSecrets(t *testing.T) {
	setenv(t, "DATABASE_URL", "postgres://app:pw-in-userinfo@db/app?password=pw-in-query&sslmode=disable",
		"SECRET_KEY", "the-secret-key", "SIMPLE_JWT_SIGNING_KEY", "the-signing-key",
		"CHANNEL_LAYER", "redis", "REDIS_URL", "redis://:pw-redis@cache:6379/0,rediss://cache2?password=pw-redis2")
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("starting", "config", c)
	for _, secret := range []string{"pw-in-userinfo", "pw-in-query", "the-secret-key", "the-signing-key", "pw-redis"} {
		if strings.Contains(b.String(), secret) {
			t.Errorf("logged configuration shows %q: %s", secret, b.String())
		}
	}
	if !strings.Contains(b.String(), "sslmode=disable") {
		t.Errorf("logged configuration lost what is not secret: %s", b.String())
	}
}
