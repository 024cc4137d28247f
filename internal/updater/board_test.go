package updater

import (
	"errors"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/updater/updatertest"
)

// TestBoardFailsClosed: an updater without a board name (no "board" and
// no board_file, or an empty one) must refuse to install anything, with an
// error that says so, rather than skip the board check. The image is
// published and valid, so a skipped check would flash it.
func TestBoardFailsClosed(t *testing.T) {
	for _, board := range []string{"", " ", "\n", " \t\r\n"} {
		t.Run("New/"+strings.NewReplacer("\n", `\n`, "\t", `\t`, "\r", `\r`).Replace(board), func(t *testing.T) {
			e := newEnv(t)
			e.publish(e.image(updatertest.ImageSpec{}), 42)
			cfg := e.config()
			cfg.Board = board
			u, err := New(cfg)
			if !errors.Is(err, ErrConfiguration) || !strings.Contains(err.Error(), "board name unknown") {
				t.Errorf("New with board %q: %v, want ErrConfiguration naming the board", board, err)
			}
			if u != nil {
				res, err := u.Check(t.Context())
				t.Errorf("check ran anyway: %+v, %v", res, err)
			}
			if calls := updatertest.Calls(t, e.sysLog); len(calls) != 0 {
				t.Errorf("sysupgrade ran: %v", calls)
			}
		})
	}

	// Whatever the way in, a check whose updater has no board stops
	// before it downloads or flashes anything.
	t.Run("Check", func(t *testing.T) {
		e := newEnv(t)
		e.publish(e.image(updatertest.ImageSpec{}), 42)
		u, err := New(e.config())
		if err != nil {
			t.Fatal(err)
		}
		u.cfg.Board = ""
		res, err := u.Check(t.Context())
		if !errors.Is(err, ErrConfiguration) || !strings.Contains(err.Error(), "board name unknown") {
			t.Errorf("check without a board: %v, want ErrConfiguration naming the board", err)
		}
		if res.Status == StatusInstalled {
			t.Errorf("status %s", res.Status)
		}
		if r := e.requestsFor(imageName); len(r) != 0 {
			t.Errorf("image fetched %d times", len(r))
		}
		if calls := updatertest.Calls(t, e.sysLog); len(calls) != 0 {
			t.Errorf("sysupgrade ran: %v", calls)
		}
		if _, err := u.verifyImage(e.dir+"/none", &manifest.Release{Image: imageName}); !errors.Is(err, ErrConfiguration) {
			t.Errorf("verifyImage without a board: %v, want ErrConfiguration", err)
		}
	})
}
