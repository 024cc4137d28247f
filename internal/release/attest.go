package release

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/torwrt/torwrt/internal/dist"
	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/pkgdb"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/provenance"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/squashfs"
	"github.com/torwrt/torwrt/internal/usign"
)

// AttestOptions configure Attest.
type AttestOptions struct {
	Dist string
	// Keys are the release public keys; the one that signed each image
	// is written as cosign.pub.
	Keys *usign.Keyring
	// Signers sign the provenance statement (DSSE). None: the statement
	// is checked but left unsigned.
	Signers []signer.Signer
	// LockDir holds <profile>/lock.json for profiles whose dist directory
	// has no lock.json; the SBOM takes package hashes from the lock.
	LockDir string
	// Statement fields for profiles whose build wrote no statement.
	BuilderID    string
	SourceRepo   string
	SourceCommit string
	Tool         string
}

// Attested says what Attest wrote for one profile.
type Attested struct {
	Profile string   `json:"profile"`
	Image   string   `json:"image"`
	Wrote   []string `json:"wrote"`
	Notes   []string `json:"notes,omitempty"`
}

// Attest writes, for every profile in o.Dist: IMAGE.cosign.sig and
// cosign.pub from the image's usign signature (no key needed), the SBOM if
// the build did not write one, and provenance.intoto.jsonl, the provenance
// statement signed as a DSSE envelope. The statement's subjects must equal
// the image digests. sha256sums is extended with the new files.
func Attest(ctx context.Context, o AttestOptions) ([]Attested, error) {
	profiles, err := dist.FindProfiles(o.Dist)
	if err != nil {
		return nil, err
	}
	var out []Attested
	for _, p := range profiles {
		a, err := attestProfile(ctx, p, o)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", p.Report.Profile, err)
		}
		out = append(out, *a)
	}
	return out, nil
}

func attestProfile(ctx context.Context, p *dist.Profile, o AttestOptions) (*Attested, error) {
	r := p.Report
	a := &Attested{Profile: r.Profile, Image: r.Image}
	img, err := os.ReadFile(p.ImagePath())
	if err != nil {
		return nil, err
	}
	if sum := sha256Hex(img); sum != r.ImageSHA256 {
		return nil, fmt.Errorf("%w: %s has sha256 %s, its build report says %s", ErrDist, p.ImagePath(), sum, r.ImageSHA256)
	}
	// Detached signatures: the build's usign .sig covers the whole file;
	// its raw bytes are also the cosign signature.
	sig, err := usign.ReadSignatureFile(p.ImagePath() + ".sig")
	if err != nil {
		return nil, err
	}
	if o.Keys == nil {
		return nil, errors.New("no release keys to check the image signatures with")
	}
	pub, err := o.Keys.VerifyReader(bytes.NewReader(img), sig)
	if err != nil {
		return nil, fmt.Errorf("%s.sig: %w", p.ImagePath(), err)
	}
	written, err := dist.CosignFiles(r.Image, sig, pub)
	if err != nil {
		return nil, err
	}

	// SBOM, unless the build wrote one.
	if _, err := os.Stat(p.Path(dist.SBOMFile)); errors.Is(err, os.ErrNotExist) {
		doc, note, err := sbomFromDist(p, img, o)
		if err != nil {
			return nil, err
		}
		if doc != nil {
			written[dist.SBOMFile] = doc
		} else {
			a.Notes = append(a.Notes, note)
		}
	} else if err != nil {
		return nil, err
	}

	// Provenance: the build's statement if it wrote one, else one made
	// from the build report. Its subjects must be the image as published.
	stmt, err := os.ReadFile(p.Path(dist.StatementFile))
	if errors.Is(err, os.ErrNotExist) {
		if stmt, err = statementFromReport(r, o); err != nil {
			return nil, err
		}
		written[dist.StatementFile] = stmt
	} else if err != nil {
		return nil, err
	}
	if err := checkSubjects(stmt, r.Image, r.ImageSHA256); err != nil {
		return nil, err
	}
	if len(o.Signers) > 0 {
		env, err := provenance.SignDSSE(ctx, provenance.PayloadType, stmt, o.Signers...)
		if err != nil {
			return nil, err
		}
		written[dist.ProvenanceFile] = env
	} else {
		a.Notes = append(a.Notes, "provenance left unsigned: no --key given")
	}

	names := make([]string, 0, len(written))
	for n := range written {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := imagesig.WriteFileAtomic(filepath.Join(p.Dir, n), written[n], 0o644); err != nil {
			return nil, err
		}
	}
	if err := dist.ExtendSums(p.Dir, names); err != nil {
		return nil, err
	}
	a.Wrote = names
	return a, nil
}

// checkSubjects makes sure the provenance is about this image.
func checkSubjects(stmt []byte, image, sum string) error {
	subjects, err := provenance.Subjects(stmt)
	if err != nil {
		return err
	}
	for _, s := range subjects {
		if s.Name == image {
			if s.SHA256 != sum {
				return fmt.Errorf("%w: provenance subject %s has sha256 %s, the image is %s", ErrDist, image, s.SHA256, sum)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: provenance has no subject named %s", ErrDist, image)
}

func readLock(p *dist.Profile, lockDir string) (*profile.Lock, string, error) {
	cands := []string{p.Path(dist.LockFile)}
	if lockDir != "" {
		cands = append(cands, filepath.Join(lockDir, p.Report.Profile, dist.LockFile))
	}
	for _, c := range cands {
		data, err := os.ReadFile(c)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		var l profile.Lock
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return nil, "", fmt.Errorf("%s: %w", c, err)
		}
		if sum := sha256Hex(data); p.Report.LockSHA256 != "" && sum != p.Report.LockSHA256 {
			return nil, "", fmt.Errorf("%s has sha256 %s, but the build used a lock with sha256 %s", c, sum, p.Report.LockSHA256)
		}
		return &l, c, nil
	}
	return nil, "", nil
}

// sbomFromDist makes the SBOM from dist alone: the .manifest, the lock
// (dist/<profile>/lock.json or LockDir) and the daemon read out of the
// image's root filesystem. Without a lock it returns a note instead.
func sbomFromDist(p *dist.Profile, img []byte, o AttestOptions) ([]byte, string, error) {
	r := p.Report
	lock, _, err := readLock(p, o.LockDir)
	if err != nil {
		return nil, "", err
	}
	if lock == nil {
		return nil, fmt.Sprintf("no SBOM: the build wrote none and no lock file is available (want %s/%s or --lock-dir)", p.Dir, dist.LockFile), nil
	}
	manifests, _ := filepath.Glob(filepath.Join(p.Dir, "*.manifest"))
	if len(manifests) != 1 {
		return nil, "", fmt.Errorf("want one ImageBuilder .manifest in %s, found %d", p.Dir, len(manifests))
	}
	man, err := os.ReadFile(manifests[0])
	if err != nil {
		return nil, "", err
	}
	rootfs, err := rootfsOfImage(img)
	if err != nil {
		return nil, "", err
	}
	daemon, err := daemonFromRootfs(rootfs)
	if err != nil {
		return nil, "", err
	}
	db, err := pkgdb.Read(rootfs, lock.Manager())
	if err != nil {
		return nil, "", err
	}
	// The image as read, whatever the report says about its size (its
	// hash was checked against the report's).
	rr := *r
	rr.ImageSize = int64(len(img))
	doc, err := dist.SBOM(&rr, dist.SBOMInput{Manifest: man, Lock: lock, Installed: db, Daemon: daemon, Tool: o.Tool})
	return doc, "", err
}

// rootfsOfImage opens the root filesystem of a sysupgrade image.
func rootfsOfImage(img []byte) (fs.FS, error) {
	layout, err := fwimage.Parse(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		return nil, err
	}
	fsys, _, err := squashfs.OpenInImage(bytes.NewReader(img[:layout.PayloadEnd]), layout.PayloadEnd)
	if err != nil {
		return nil, fmt.Errorf("image root filesystem: %w", err)
	}
	return fsys, nil
}

// daemonFromRootfs reads the router daemon out of the image's root
// filesystem.
func daemonFromRootfs(fsys fs.FS) ([]byte, error) {
	f, err := fsys.Open(strings.TrimPrefix(provenance.DaemonPath, "/"))
	if err != nil {
		return nil, fmt.Errorf("image root filesystem: %s: %w", provenance.DaemonPath, err)
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<20))
}

func statementFromReport(r *dist.Report, o AttestOptions) ([]byte, error) {
	return dist.Statement(r, dist.StatementInput{BuilderID: o.BuilderID, SourceRepo: o.SourceRepo, SourceCommit: o.SourceCommit})
}
