// Package overlay holds the router's files as text/template templates: the
// tree that internal/overlay renders and the ImageBuilder copies over the
// root filesystem (FILES=).
//
// root/ mirrors the router's filesystem. manifest.txt lists every template
// with its mode and the condition under which it is rendered; a file in
// root/ that the manifest does not list is an error, so nothing reaches the
// image by accident.
package overlay

import "embed"

// Root is the template tree; paths inside it start with "root/".
//
//go:embed root manifest.txt
var Root embed.FS
