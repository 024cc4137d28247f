// Package testfixture finds the test fixtures torwrt shares with its
// sibling projects, wherever the checkout is.
package testfixture

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// RealIBArchive is the real LEDE 17.01.4 ImageBuilder's file name in the
// real-ib fixture directory.
const RealIBArchive = "lede-17.01.4-ramips-mt7620-imagebuilder.tar.zst"

// RealIBDir returns the directory of the real-ImageBuilder fixture
// (shared/fixtures/real-ib, whose README describes it): $TORWRT_REAL_IB if
// set, else shared/fixtures/real-ib beside the working directory or any of
// its parents, else /work/shared/fixtures/real-ib.
func RealIBDir() (string, error) {
	if d := os.Getenv("TORWRT_REAL_IB"); d != "" {
		return check(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if d, err := check(filepath.Join(dir, "shared", "fixtures", "real-ib")); err == nil {
			return d, nil
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	if d, err := check("/work/shared/fixtures/real-ib"); err == nil {
		return d, nil
	}
	return "", errors.New("the real ImageBuilder fixture (shared/fixtures/real-ib) is not beside this checkout or any parent, nor at /work/shared; set TORWRT_REAL_IB to its directory")
}

func check(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, RealIBArchive)); err != nil {
		return "", fmt.Errorf("real-ib fixture: %w", err)
	}
	return filepath.Abs(dir)
}
