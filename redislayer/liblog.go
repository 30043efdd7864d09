package redislayer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RouteClientLogs sends go-redis's own log lines (one per failed dial while
// Redis is down) to log at debug level; the layer logs outages itself. It
// changes a process-wide setting of go-redis, so main calls it once.
func RouteClientLogs(log *slog.Logger) {
	redis.SetLogger(clientLogger{log})
}

type clientLogger struct{ log *slog.Logger }

func (l clientLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)), "source", "go-redis")
}
