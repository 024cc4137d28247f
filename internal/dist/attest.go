package dist

import (
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/torwrt/torwrt/internal/pkgdb"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/provenance"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/usign"
)

// The attestation files are made here, from a build report and what the
// build (or, for `release attest`, dist/ itself) holds: one SBOM writer and
// one statement writer, so a build's files and attest's are the same
// bytes for the same image.

// SBOMInput is what the SBOM is made from besides the report.
type SBOMInput struct {
	// Manifest is the ImageBuilder's .manifest as published.
	Manifest []byte
	Lock     *profile.Lock
	// Installed is the package database read out of the image.
	Installed *pkgdb.Installed
	// Daemon is the router daemon binary as installed in the image.
	Daemon []byte
	// Tool is imgbuild's version.
	Tool string
}

// SBOM is the CycloneDX SBOM (SBOMFile) of the image r describes.
func SBOM(r *Report, in SBOMInput) ([]byte, error) {
	doc, err := provenance.SBOM(provenance.SBOMInput{
		Image: provenance.Subject{Name: r.Image, SHA256: r.ImageSHA256}, ImageSize: r.ImageSize,
		Profile: r.Profile, Brand: r.Brand, Version: r.Version, Board: r.Board, Simulated: r.Simulated,
		ImageBuilder: r.ImageBuilder, Manifest: in.Manifest, Lock: in.Lock, Installed: in.Installed,
		Daemon: in.Daemon, SourceDateEpoch: r.SourceDateEpoch, Tool: in.Tool,
	})
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	return doc, nil
}

// StatementInput is what the provenance statement takes besides the
// report: who built it, from which source, how it was invoked.
type StatementInput struct {
	BuilderID    string
	Invocation   []string
	SourceRepo   string
	SourceCommit string
	// Byproducts are files made alongside the image (the SBOM).
	Byproducts []provenance.Subject
}

// Statement is the SLSA provenance statement (StatementFile) of the image
// r describes; its subject is the image at r.ImageSHA256.
func Statement(r *Report, in StatementInput) ([]byte, error) {
	if r.Daemon == nil {
		return nil, errors.New("build report has no daemon section; cannot write provenance")
	}
	stmt, err := provenance.Statement(provenance.StatementInput{
		Subjects: []provenance.Subject{{Name: r.Image, SHA256: r.ImageSHA256}}, BuilderID: in.BuilderID, Invocation: in.Invocation,
		Profile: r.Profile, Brand: r.Brand, Version: r.Version, Simulated: r.Simulated,
		ImageBuilder: r.ImageBuilder, LockSHA256: r.LockSHA256, ProfileSHA256: r.ProfileSHA256,
		GoVersion: r.Daemon.GoVersion, DaemonSHA256: r.Daemon.SHA256, DaemonArgv: r.Daemon.Argv, DaemonEnv: r.Daemon.Env,
		SourceRepo: in.SourceRepo, SourceCommit: in.SourceCommit, SourceDateEpoch: r.SourceDateEpoch, Engine: r.Engine,
		Byproducts: in.Byproducts,
	})
	if err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	return stmt, nil
}

// CosignSignature returns the detached signature `cosign verify-blob
// --signature` reads for a usign signature: the 64 raw Ed25519 bytes,
// base64. It verifies with the PKIX PEM of the same key (CosignFiles).
func CosignSignature(sig *usign.Signature) []byte {
	return []byte(base64.StdEncoding.EncodeToString(sig.Sig[:]))
}

// CosignFiles are IMAGE.cosign.sig and cosign.pub for image's usign
// signature sig by pub.
func CosignFiles(image string, sig *usign.Signature, pub *usign.PublicKey) (map[string][]byte, error) {
	pem, err := signer.PublicKeyPEM(pub.Key)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{image + CosignSuffix: CosignSignature(sig), CosignPubFile: pem}, nil
}
