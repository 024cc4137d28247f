package userland

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

var (
	// ErrHashMismatch reports a .deb whose size or SHA-256 is not the
	// pinned one.
	ErrHashMismatch = errors.New("sha256 mismatch")
	// ErrGone reports a pinned .deb the mirror no longer has.
	ErrGone = errors.New("gone from the mirror")
)

const (
	fetchWorkers   = 4
	fetchAttempts  = 3
	fetchTimeout   = 10 * time.Minute // one .deb, body included
	headerTimeout  = 60 * time.Second
	progressPeriod = time.Second
)

// httpClient fetches .debs. Plain HTTP is fine: every file is checked
// against the SHA-256 pinned in the committed lock, which came from apt's
// signed indexes.
var httpClient = func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = headerTimeout
	return &http.Client{Transport: t}
}()

// debPath is where Fetch keeps a .deb: cacheDir/sha256/<hex>.
func debPath(cacheDir string, e Entry) string {
	return filepath.Join(cacheDir, "sha256", e.SHA256)
}

// Fetch makes sure every .deb of lock is in cacheDir/sha256/<hex> with the
// pinned size and SHA-256. A cached file is hashed and kept if it is right;
// otherwise the .deb is downloaded into a temporary file next to it
// (<hex>.*.unverified), checked, made 0644 and renamed into place. A few
// downloads run at once. progress, if not nil, gets a line at most once a
// second and one at the end.
func Fetch(ctx context.Context, lock *Lock, cacheDir string, progress io.Writer) error {
	if err := lock.Validate(); err != nil {
		return err
	}
	dir := filepath.Join(cacheDir, "sha256")
	if err := mkdirAll(dir); err != nil {
		return fmt.Errorf("userland: fetch: %w", err)
	}
	if progress == nil {
		progress = io.Discard
	}
	var total int64
	for _, e := range lock.Entries {
		total += e.Size
	}
	p := &fetchProgress{w: progress, n: len(lock.Entries), total: total, start: time.Now()}

	errs := make([]error, len(lock.Entries))
	inParallel(ctx, len(lock.Entries), min(fetchWorkers, len(lock.Entries)), func(_, i int) {
		e := lock.Entries[i]
		downloaded, err := fetchOne(ctx, e, cacheDir)
		errs[i] = err
		p.done(e.Size, downloaded, err == nil)
	}, nil)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("userland: fetch: %w", err)
	}
	p.finish()
	return errors.Join(errs...) // in lock order, whatever order they failed in
}

// fetchOne returns whether it downloaded.
func fetchOne(ctx context.Context, e Entry, cacheDir string) (bool, error) {
	dst := debPath(cacheDir, e)
	switch err := checkFile(dst, e); {
	case err == nil:
		return false, nil
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, ErrHashMismatch):
		// A damaged cache entry: replace it.
		if err := os.Remove(dst); err != nil {
			return false, fmt.Errorf("userland: fetch %s: %w", e.Name, err)
		}
	default:
		return false, fmt.Errorf("userland: fetch %s: %w", e.Name, err)
	}
	var err error
	for attempt := 1; attempt <= fetchAttempts; attempt++ {
		if err = download(ctx, e, dst); err == nil || !transient(ctx, err) {
			break
		}
		select {
		case <-time.After(time.Duration(attempt) * time.Second):
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return err == nil, err
}

// transient reports a failure worth another try: network errors and
// server errors, not a missing file or a wrong hash.
func transient(ctx context.Context, err error) bool {
	var se *statusError
	switch {
	case ctx.Err() != nil, errors.Is(err, ErrGone), errors.Is(err, ErrHashMismatch), errors.Is(err, ErrTooLarge):
		return false
	case errors.As(err, &se):
		return se.code >= 500
	}
	return true
}

type statusError struct {
	url    string
	code   int
	status string
}

func (e *statusError) Error() string { return fmt.Sprintf("GET %s: %s", e.url, e.status) }

// checkFile hashes an existing cache file; fs.ErrNotExist if there is none.
func checkFile(p string, e Entry) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, e.Size+1))
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != e.Size || got != e.SHA256 {
		return fmt.Errorf("%w: %s %s: cached %s has %d bytes with sha256 %s, lock pins %d bytes with sha256 %s", ErrHashMismatch, e.Name, e.Version, p, n, got, e.Size, e.SHA256)
	}
	return nil
}

func download(ctx context.Context, e Entry, dst string) (err error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL, nil)
	if err != nil {
		return fmt.Errorf("userland: fetch %s: %w", e.Name, err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("userland: fetch %s %s: %w", e.Name, e.Version, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fmt.Errorf("userland: fetch %s %s: GET %s: %s: %w (Debian superseded this version); re-lock with scripts/userland-lock.sh", e.Name, e.Version, e.URL, resp.Status, ErrGone)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("userland: fetch %s %s: %w", e.Name, e.Version, &statusError{e.URL, resp.StatusCode, resp.Status})
	case resp.ContentLength >= 0 && resp.ContentLength != e.Size:
		return fmt.Errorf("userland: fetch %s %s: %w: GET %s: server says %d bytes, lock pins %d", e.Name, e.Version, ErrHashMismatch, e.URL, resp.ContentLength, e.Size)
	}

	tmp, err := os.CreateTemp(filepath.Dir(dst), e.SHA256+".*.unverified")
	if err != nil {
		return fmt.Errorf("userland: fetch %s: %w", e.Name, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, e.Size+1))
	if err != nil {
		return fmt.Errorf("userland: fetch %s %s: GET %s: %w", e.Name, e.Version, e.URL, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != e.Size || got != e.SHA256 {
		return fmt.Errorf("userland: fetch %s %s: %w: GET %s gave %d bytes with sha256 %s, lock pins %d bytes with sha256 %s", e.Name, e.Version, ErrHashMismatch, e.URL, n, got, e.Size, e.SHA256)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("userland: fetch %s: %w", e.Name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("userland: fetch %s: %w", e.Name, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("userland: fetch %s: %w", e.Name, err)
	}
	return nil
}

// mkdirAll creates dir and its missing parents as 0755, whatever the umask.
func mkdirAll(dir string) error {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, d := range missing {
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// fetchProgress writes throttled progress lines.
type fetchProgress struct {
	mu                 sync.Mutex
	w                  io.Writer
	n, ok, downloaded  int
	total, bytes       int64
	start, lastPrinted time.Time
}

func (p *fetchProgress) done(size int64, downloaded, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ok {
		p.ok++
		p.bytes += size
		if downloaded {
			p.downloaded++
		}
	}
	if now := time.Now(); now.Sub(p.lastPrinted) >= progressPeriod {
		p.lastPrinted = now
		fmt.Fprintf(p.w, "userland: fetch: %d/%d packages, %.1f/%.1f MB\n", p.ok, p.n, mb(p.bytes), mb(p.total))
	}
}

func (p *fetchProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "userland: fetch: %d/%d packages (%.1f MB), %d downloaded, %d cached, in %s\n",
		p.ok, p.n, mb(p.bytes), p.downloaded, p.ok-p.downloaded, time.Since(p.start).Round(100*time.Millisecond))
}

func mb(n int64) float64 { return float64(n) / 1e6 }

// inParallel runs each(w, i) for every i in [0, n) on workers goroutines
// (w is the worker's index), handing out indices in order until ctx is
// done; then each worker runs done(w) (if given) and inParallel returns.
func inParallel(ctx context.Context, n, workers int, each func(w, i int), done func(w int)) {
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				each(w, i)
			}
			if done != nil {
				done(w)
			}
		}()
	}
feed:
	for i := range n {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
}
