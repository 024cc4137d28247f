package build

import (
	"context"
	"io"

	"github.com/torwrt/torwrt/internal/feed"
	"github.com/torwrt/torwrt/internal/ipk"
)

// controlFields reads a package's control fields for the feed index, with
// the ipk reader's limits against oversized or hostile packages.
var controlFields feed.ControlReader = func(ctx context.Context, r io.Reader) ([]feed.Field, error) {
	p, err := ipk.Read(ctx, r, ipk.Limits{})
	if err != nil {
		return nil, err
	}
	out := make([]feed.Field, 0, len(p.Control.Fields))
	for _, f := range p.Control.Fields {
		out = append(out, feed.Field{Name: f.Name, Value: f.Value})
	}
	return out, nil
}
