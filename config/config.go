// Package config is the sidecar's configuration: one struct, read from the
// environment with the names a Django team already uses.
package config

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/chatsidecar/sidecar/redact"
)

// Config is every setting of the sidecar. The `desc` tags are the README's
// configuration table.
type Config struct {
	ListenAddr  string `envconfig:"LISTEN_ADDR" default:":8001" desc:"address the HTTP/WebSocket server listens on"`
	AdminAddr   string `envconfig:"ADMIN_ADDR" desc:"address of the admin listener (Prometheus /metrics, /debug/pprof/), e.g. 127.0.0.1:9101; empty: none. Keep it off the public network"`
	DatabaseURL string `envconfig:"DATABASE_URL" desc:"(required) Django's database: postgres://user:pass@host:5432/name?sslmode=disable or sqlite:///abs/path/db.sqlite3"`
	DBMaxConns  int    `envconfig:"DB_MAX_CONNS" default:"20" desc:"most open database connections"`
	DBPrepare   bool   `envconfig:"DB_PREPARE" default:"true" desc:"prepare each statement once per connection; false behind a pooler that cannot keep prepared statements (PgBouncer in transaction mode before 1.21)"`

	SecretKey       string  `envconfig:"SECRET_KEY" desc:"Django's SECRET_KEY (the HMAC key when SIMPLE_JWT_SIGNING_KEY is unset)"`
	JWTAlgorithm    string  `envconfig:"SIMPLE_JWT_ALGORITHM" default:"HS256" desc:"SIMPLE_JWT ALGORITHM: HS256/384/512, RS256/384/512, ES256/384/512"`
	JWTSigningKey   string  `envconfig:"SIMPLE_JWT_SIGNING_KEY" desc:"SIMPLE_JWT SIGNING_KEY for HS*; defaults to SECRET_KEY"`
	JWTVerifyingKey string  `envconfig:"SIMPLE_JWT_VERIFYING_KEY" desc:"SIMPLE_JWT VERIFYING_KEY: PEM public key for RS*/ES*"`
	JWTAudience     string  `envconfig:"SIMPLE_JWT_AUDIENCE" desc:"SIMPLE_JWT AUDIENCE; checked only when set"`
	JWTIssuer       string  `envconfig:"SIMPLE_JWT_ISSUER" desc:"SIMPLE_JWT ISSUER; checked only when set"`
	JWTLeeway       Seconds `envconfig:"SIMPLE_JWT_LEEWAY" default:"0" desc:"SIMPLE_JWT LEEWAY in seconds (or a Go duration such as 30s)"`
	JWTUserIDClaim  string  `envconfig:"SIMPLE_JWT_USER_ID_CLAIM" default:"user_id" desc:"SIMPLE_JWT USER_ID_CLAIM"`
	JWTTypeClaim    string  `envconfig:"SIMPLE_JWT_TOKEN_TYPE_CLAIM" default:"token_type" desc:"SIMPLE_JWT TOKEN_TYPE_CLAIM"`

	AllowedHosts  []string `envconfig:"ALLOWED_HOSTS" desc:"Django's ALLOWED_HOSTS, comma-separated, for the Origin check (* allows all; requests without Origin are always allowed)"`
	MediaRoot     string   `envconfig:"MEDIA_ROOT" default:"media" desc:"Django's MEDIA_ROOT: where file messages are written"`
	MediaURL      string   `envconfig:"MEDIA_URL" default:"/media/" desc:"Django's MEDIA_URL, used in file_url"`
	PublicBaseURL string   `envconfig:"PUBLIC_BASE_URL" default:"http://localhost:8000" desc:"scheme://host of the Django site, used in api_info and file_url"`

	UserTable         string            `envconfig:"USER_TABLE" default:"users_user" desc:"table of AUTH_USER_MODEL"`
	ConversationTable string            `envconfig:"CONVERSATION_TABLE" default:"chat_conversation" desc:"table of chat.Conversation"`
	MessageTable      string            `envconfig:"MESSAGE_TABLE" default:"chat_message" desc:"table of chat.Message"`
	AttachmentTable   string            `envconfig:"ATTACHMENT_TABLE" default:"chat_fileattachment" desc:"table of chat.FileAttachment"`
	BlockTable        string            `envconfig:"BLOCK_TABLE" default:"listener_listenerblockedtalker" desc:"table of listener.ListenerBlockedTalker"`
	DBColumns         map[string]string `envconfig:"DB_COLUMNS" desc:"renamed columns, model.column:name pairs (e.g. message.sender_id:author_id)"`

	Feed              string        `envconfig:"FEED" default:"auto" desc:"the PostgreSQL change feed for histories: auto (use it when the database allows, else say why once and go without), on (refuse to start without it) or off"`
	FeedPublication   string        `envconfig:"FEED_PUBLICATION" default:"sidecar_feed" desc:"the publication the change feed follows (see docs/deployment.md for the one-time SQL)"`
	FeedMaxLag        time.Duration `envconfig:"FEED_MAX_LAG" default:"1s" desc:"how long a history waits for the feed to catch up before it is read from the database instead"`
	HistoryCacheBytes Bytes         `envconfig:"HISTORY_CACHE_BYTES" default:"32MiB" desc:"memory for the histories kept in memory (by the change feed, or checked against the rows' versions without it); least recently used conversations are dropped past it, and a history larger than an eighth of it is not kept"`

	ChannelLayer     string   `envconfig:"CHANNEL_LAYER" default:"memory" desc:"memory (groups inside this process) or redis (channels_redis, shared with Django and other sidecars)"`
	RedisURL         []string `envconfig:"REDIS_URL" default:"redis://localhost:6379" desc:"Redis hosts of CHANNEL_LAYERS, comma-separated, in the same order as Django's (sharding)"`
	LayerPrefix      string   `envconfig:"CHANNEL_LAYER_PREFIX" default:"asgi" desc:"channels_redis prefix"`
	LayerCapacity    int      `envconfig:"CHANNEL_LAYER_CAPACITY" default:"100" desc:"channels_redis capacity (messages per process queue)"`
	LayerExpiry      Seconds  `envconfig:"CHANNEL_LAYER_EXPIRY" default:"60" desc:"channels_redis expiry in seconds (message TTL)"`
	LayerGroupExpiry Seconds  `envconfig:"CHANNEL_LAYER_GROUP_EXPIRY" default:"86400" desc:"channels_redis group_expiry in seconds (the sidecar refreshes its own memberships)"`
	LayerKeys        []string `envconfig:"CHANNEL_LAYER_SYMMETRIC_ENCRYPTION_KEYS" desc:"channels_redis symmetric_encryption_keys, comma-separated (encrypt with the first)"`
	LayerChannelCap  []string `envconfig:"CHANNEL_LAYER_CHANNEL_CAPACITY" desc:"channels_redis channel_capacity as glob=capacity pairs, comma-separated, first match wins (e.g. specific.*=500)"`

	MaxFrameBytes     int64         `envconfig:"MAX_FRAME_BYTES" default:"16777216" desc:"largest client message (a file_message); larger closes with 1009"`
	MaxTextFrameBytes int64         `envconfig:"MAX_TEXT_FRAME_BYTES" default:"131072" desc:"largest client message that is not a file_message; larger closes with 1009"`
	MaxFileBytes      int64         `envconfig:"MAX_FILE_BYTES" default:"10485760" desc:"largest decoded file of a file_message"`
	MaxMessageChars   int           `envconfig:"MAX_MESSAGE_CHARS" default:"10000" desc:"longest message text or caption, in characters (0: no limit); longer gets an error frame"`
	MessageTimeout    time.Duration `envconfig:"MESSAGE_TIMEOUT" default:"60s" desc:"longest time a client message may take to arrive whole, however fragmented"`
	SendQueueBytes    int64         `envconfig:"SEND_QUEUE_BYTES" default:"8388608" desc:"bytes queued for one connection; a connection that falls further behind is closed with 1008"`
	MemoryLimit       Bytes         `envconfig:"MEMORY_LIMIT" default:"192MiB" desc:"memory the process aims to stay under (GOMEMLIMIT); half of it is the budget for frames read or queued and histories"`
	MemoryWait        time.Duration `envconfig:"MEMORY_WAIT" default:"5s" desc:"how long work waits for the memory budget before the client is told to retry (503 at connect, close 1013)"`
	RateLimit         float64       `envconfig:"RATE_LIMIT" default:"100" desc:"frames per second a connection may send on average (0: no limit); more get an error frame"`
	RateBurst         int           `envconfig:"RATE_BURST" default:"200" desc:"frames a connection may send at once; a client still sending this many past the limit is closed with 1008"`
	MaxUserConns      int           `envconfig:"MAX_USER_CONNECTIONS" default:"32" desc:"connections one user may have open (0: no limit); more are refused with 403"`
	FileRate          Bytes         `envconfig:"FILE_BYTES_PER_SECOND" default:"1MiB" desc:"bytes of files one user may store per second on average, each file counted as at least 64 KiB (0: no limit)"`
	FileBurst         Bytes         `envconfig:"FILE_BURST_BYTES" default:"20MiB" desc:"bytes of files one user may store at once"`
	InboxConcurrency  int           `envconfig:"INBOX_CONCURRENCY" default:"4" desc:"conversation lists computed at once in the process (each is one query); updates arriving meanwhile are merged"`
	PingInterval      time.Duration `envconfig:"PING_INTERVAL" default:"20s" desc:"how often idle connections are pinged"`
	PingTimeout       time.Duration `envconfig:"PING_TIMEOUT" default:"30s" desc:"close a connection this long after a ping without a pong"`
	WriteTimeout      time.Duration `envconfig:"WRITE_TIMEOUT" default:"10s" desc:"longest time one frame may take to write"`
	DBTimeout         time.Duration `envconfig:"DB_TIMEOUT" default:"5s" desc:"longest time one database call may take (also PostgreSQL's lock_timeout; statement_timeout is DB_TIMEOUT + MEMORY_WAIT)"`
	RedisTimeout      time.Duration `envconfig:"REDIS_TIMEOUT" default:"3s" desc:"longest time one Redis command may take"`
	DrainTimeout      time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"25s" desc:"on SIGTERM, how long to wait for in-flight work before closing anyway"`

	LogLevel  slog.Level `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat string     `envconfig:"LOG_FORMAT" default:"text" desc:"text or json"`
}

// Bytes is a size written as a number of bytes or with a binary suffix
// (KiB, MiB, GiB), as GOMEMLIMIT is.
type Bytes int64

// Decode implements envconfig.Decoder.
func (b *Bytes) Decode(v string) error {
	units := []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	mult := int64(1)
	num := strings.TrimSpace(v)
	for _, u := range units {
		if s, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(s), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("want bytes, e.g. 1048576 or 192MiB, got %q", v)
	}
	*b = Bytes(n * mult)
	return nil
}

func (b Bytes) String() string {
	switch {
	case b >= 1<<20 && b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	case b >= 1<<10 && b%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", b>>10)
	}
	return strconv.FormatInt(int64(b), 10)
}

// Seconds is a duration written as Django writes LEEWAY (a number of
// seconds) or as a Go duration.
type Seconds time.Duration

// Decode implements envconfig.Decoder.
func (s *Seconds) Decode(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		*s = Seconds(time.Duration(f * float64(time.Second)))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("want seconds or a duration, got %q", v)
	}
	*s = Seconds(d)
	return nil
}

// Load reads the configuration from the environment and checks it. The
// error is one line naming the variable.
func Load() (Config, error) {
	c, err := load()
	if err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Default is the configuration with every variable unset: the defaults of
// the struct tags, the only place they are written, decoded as envconfig
// decodes them (TestDefault checks both agree). It is not valid as it is
// (DATABASE_URL and a key are required); callers set what they need. Unlike
// Load it reads nothing, so parallel tests can build configurations.
func Default() Config {
	var c Config
	v := reflect.ValueOf(&c).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		if def, ok := f.Tag.Lookup("default"); ok {
			if err := decode(v.Field(i), def); err != nil {
				panic(fmt.Sprintf("config: default of %s: %v", f.Tag.Get("envconfig"), err)) // a bad tag is a bug
			}
		}
	}
	return c
}

// decode sets a field from text, for the kinds Config uses.
func decode(f reflect.Value, s string) error {
	if d, ok := f.Addr().Interface().(envconfig.Decoder); ok {
		return d.Decode(s)
	}
	if u, ok := f.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(s))
	}
	if f.Type() == reflect.TypeOf(time.Duration(0)) {
		d, err := time.ParseDuration(s)
		f.SetInt(int64(d))
		return err
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 0, 64)
		f.SetInt(n)
		return err
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		f.SetBool(b)
		return err
	case reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		f.SetFloat(x)
		return err
	case reflect.Slice:
		f.Set(reflect.ValueOf(strings.Split(s, ",")))
	default:
		return fmt.Errorf("no default decoding for %s", f.Type())
	}
	return nil
}

func load() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return c, fmt.Errorf("%s: invalid value %q: %v", pe.KeyName, pe.Value, pe.Err)
		}
		return c, err
	}
	return c, nil
}

// Validate checks what envconfig cannot.
func (c Config) Validate() error {
	if c.DatabaseURL == "" {
		return errors.New("DATABASE_URL: required (postgres://user@host:port/dbname or sqlite:///abs/path/db.sqlite3)")
	}
	if path, ok := c.SQLitePath(); ok {
		if path == "" || strings.ContainsAny(path, "?#") {
			return errors.New("DATABASE_URL: want sqlite:///abs/path/db.sqlite3 (no '?' or '#' in the path)")
		}
	} else if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return errors.New("DATABASE_URL: want postgres://user@host:port/dbname or sqlite:///abs/path/db.sqlite3")
	}
	if c.JWTSigningKey == "" && c.SecretKey == "" && strings.HasPrefix(c.JWTAlgorithm, "HS") {
		return errors.New("SECRET_KEY: required (or SIMPLE_JWT_SIGNING_KEY) to verify HS tokens")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("LOG_FORMAT: want text or json, got %q", c.LogFormat)
	}
	if !strings.HasPrefix(c.MediaURL, "/") && !strings.Contains(c.MediaURL, "://") {
		return fmt.Errorf("MEDIA_URL: want a path like /media/ or an absolute URL, got %q", c.MediaURL)
	}
	if c.PublicBaseURL != "" {
		if u, err := url.Parse(c.PublicBaseURL); err != nil || u.Host == "" {
			return fmt.Errorf("PUBLIC_BASE_URL: want scheme://host[:port], got %q", c.PublicBaseURL)
		}
	}
	positive := []struct {
		name string
		v    int64
	}{
		{"DB_MAX_CONNS", int64(c.DBMaxConns)}, {"MAX_FRAME_BYTES", c.MaxFrameBytes}, {"MAX_TEXT_FRAME_BYTES", c.MaxTextFrameBytes},
		{"MAX_FILE_BYTES", c.MaxFileBytes}, {"MESSAGE_TIMEOUT", int64(c.MessageTimeout)}, {"SEND_QUEUE_BYTES", c.SendQueueBytes},
		{"MEMORY_LIMIT", int64(c.MemoryLimit)}, {"MEMORY_WAIT", int64(c.MemoryWait)}, {"INBOX_CONCURRENCY", int64(c.InboxConcurrency)},
		{"PING_INTERVAL", int64(c.PingInterval)}, {"PING_TIMEOUT", int64(c.PingTimeout)},
		{"WRITE_TIMEOUT", int64(c.WriteTimeout)}, {"DB_TIMEOUT", int64(c.DBTimeout)}, {"REDIS_TIMEOUT", int64(c.RedisTimeout)},
		{"SHUTDOWN_TIMEOUT", int64(c.DrainTimeout)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("%s: must be positive", p.name)
		}
	}
	switch c.Feed {
	case "auto", "on", "off":
	default:
		return fmt.Errorf("FEED: want auto, on or off, got %q", c.Feed)
	}
	if _, sqlite := c.SQLitePath(); sqlite && c.Feed == "on" {
		return errors.New("FEED: on needs PostgreSQL (the change feed is PostgreSQL's logical replication)")
	}
	if c.FeedMaxLag <= 0 || c.HistoryCacheBytes <= 0 {
		return errors.New("FEED_MAX_LAG and HISTORY_CACHE_BYTES: must be positive")
	}
	switch c.ChannelLayer {
	case "memory", "redis":
	default:
		return fmt.Errorf("CHANNEL_LAYER: want memory or redis, got %q", c.ChannelLayer)
	}
	if c.ChannelLayer == "redis" {
		for _, h := range c.RedisURL {
			if u, err := url.Parse(h); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
				return fmt.Errorf("REDIS_URL: want redis://host:port[/db], got %q", h)
			}
		}
		if c.LayerCapacity <= 0 {
			return errors.New("CHANNEL_LAYER_CAPACITY: must be positive")
		}
		if c.LayerExpiry < Seconds(time.Second) || c.LayerGroupExpiry < Seconds(time.Second) {
			return errors.New("CHANNEL_LAYER_EXPIRY and CHANNEL_LAYER_GROUP_EXPIRY: must be at least 1 second")
		}
	}
	nonNegative := []struct {
		name string
		v    int64
	}{
		{"MAX_MESSAGE_CHARS", int64(c.MaxMessageChars)}, {"MAX_USER_CONNECTIONS", int64(c.MaxUserConns)},
		{"FILE_BYTES_PER_SECOND", int64(c.FileRate)}, {"FILE_BURST_BYTES", int64(c.FileBurst)},
	}
	for _, p := range nonNegative {
		if p.v < 0 {
			return fmt.Errorf("%s: must not be negative", p.name)
		}
	}
	if c.MaxTextFrameBytes > c.MaxFrameBytes {
		return errors.New("MAX_TEXT_FRAME_BYTES: must not be larger than MAX_FRAME_BYTES")
	}
	if c.FileRate > 0 && int64(c.FileBurst) < c.MaxFileBytes {
		return errors.New("FILE_BURST_BYTES: must be at least MAX_FILE_BYTES, or no file could ever be stored")
	}
	if c.SendQueueBytes > int64(c.MemoryLimit)/2 {
		return errors.New("SEND_QUEUE_BYTES: must not be larger than half of MEMORY_LIMIT (the memory budget)")
	}
	if c.RateLimit < 0 || (c.RateLimit > 0 && c.RateBurst <= 0) {
		return errors.New("RATE_LIMIT and RATE_BURST: a positive burst is needed with a limit (RATE_LIMIT=0 turns the limit off)")
	}
	if c.JWTLeeway < 0 {
		return errors.New("SIMPLE_JWT_LEEWAY: must not be negative")
	}
	if _, err := c.ChannelCapacity(); err != nil {
		return err
	}
	return nil
}

// SQLitePath returns the file path of a Django-style SQLite DATABASE_URL:
// sqlite:///abs/path/db.sqlite3 (three slashes and an absolute path) or
// sqlite:relative/path. ok is false when the URL is not an SQLite one.
func (c Config) SQLitePath() (path string, ok bool) {
	rest, found := strings.CutPrefix(c.DatabaseURL, "sqlite:")
	if !found {
		return "", false
	}
	if strings.HasPrefix(rest, "//") {
		// sqlite:///abs → "/abs"; sqlite:////abs, as some tools write it, too.
		rest = "/" + strings.TrimLeft(rest, "/")
	}
	return rest, true
}

// CapacityRule is one CHANNEL_LAYER_CHANNEL_CAPACITY pair.
type CapacityRule struct {
	Pattern  string
	Capacity int
}

// ChannelCapacity parses CHANNEL_LAYER_CHANNEL_CAPACITY, in order.
func (c Config) ChannelCapacity() ([]CapacityRule, error) {
	var out []CapacityRule
	for _, pair := range c.LayerChannelCap {
		pattern, n, ok := strings.Cut(pair, "=")
		capacity, err := strconv.Atoi(n)
		if !ok || pattern == "" || err != nil || capacity <= 0 {
			return nil, fmt.Errorf("CHANNEL_LAYER_CHANNEL_CAPACITY: want glob=capacity pairs, got %q", pair)
		}
		out = append(out, CapacityRule{Pattern: pattern, Capacity: capacity})
	}
	return out, nil
}

// SigningKey is SIMPLE_JWT_SIGNING_KEY, or SECRET_KEY as Django defaults it.
func (c Config) SigningKey() string {
	if c.JWTSigningKey != "" {
		return c.JWTSigningKey
	}
	return c.SecretKey
}

// LogValue prints the configuration with secrets masked.
func (c Config) LogValue() slog.Value {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "***"
	}
	return slog.GroupValue(
		slog.String("listen", c.ListenAddr), slog.String("admin", c.AdminAddr), slog.String("database", redact.URL(c.DatabaseURL)),
		slog.String("secret_key", mask(c.SecretKey)), slog.String("jwt_algorithm", c.JWTAlgorithm),
		slog.String("jwt_signing_key", mask(c.JWTSigningKey)), slog.Any("allowed_hosts", c.AllowedHosts),
		slog.String("media_root", c.MediaRoot), slog.String("media_url", c.MediaURL),
		slog.String("public_base_url", c.PublicBaseURL), slog.String("channel_layer", c.ChannelLayer),
		slog.String("feed", c.Feed), slog.String("feed_publication", c.FeedPublication),
		slog.Any("redis", redactAll(c.RedisURL)), slog.String("layer_prefix", c.LayerPrefix),
		slog.Int64("max_frame_bytes", c.MaxFrameBytes), slog.Int64("max_file_bytes", c.MaxFileBytes),
		slog.Int64("send_queue_bytes", c.SendQueueBytes), slog.Any("memory_limit", c.MemoryLimit),
		slog.Duration("ping_interval", c.PingInterval),
		slog.Duration("ping_timeout", c.PingTimeout),
	)
}

func redactAll(urls []string) []string {
	out := make([]string, len(urls))
	for i, s := range urls {
		out[i] = redact.URL(s)
	}
	return out
}

// PrintSettings writes every setting: its variable, its default and what
// it does, from the struct tags (the same ones Load reads).
func PrintSettings(w io.Writer) {
	typ := reflect.TypeOf(Config{})
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		name := f.Tag.Get("envconfig")
		def := f.Tag.Get("default")
		if def == "" {
			def = "(none)"
		}
		fmt.Fprintf(w, "  %-40s default %s\n      %s\n", name, def, f.Tag.Get("desc"))
	}
}
