package brand

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"image/png"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

type logoInfo struct {
	typ  string // svg or png
	w, h int
}

const svgNS = "http://www.w3.org/2000/svg"

// checkLogo accepts a PNG that decodes, or an SVG that a browser shows as
// an image and that refers to nothing outside itself: no scripts, event
// handlers, foreign objects, entities, or links other than #fragments.
// The status page inlines the logo as an <img> data URI behind a CSP, so
// none of those could run or load anyway; refusing them here keeps the
// brand honest and the asset reusable.
func checkLogo(name string, data []byte) (logoInfo, error) {
	lower := strings.ToLower(name)
	switch {
	case strings.HasSuffix(lower, ".png"):
		if !bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")) {
			return logoInfo{}, fmt.Errorf("%s is named .png but is not a PNG file", name)
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			return logoInfo{}, fmt.Errorf("%s: broken PNG: %v", name, err)
		}
		w, h := img.Bounds().Dx(), img.Bounds().Dy()
		if w < MinLogoPixels || h < MinLogoPixels || w > MaxLogoPixels || h > MaxLogoPixels {
			return logoInfo{}, fmt.Errorf("%s is %dx%d pixels; want %d to %d on each side (it is shown at 48x48, 96x96 on sharp screens)", name, w, h, MinLogoPixels, MaxLogoPixels)
		}
		return logoInfo{"png", w, h}, nil
	case strings.HasSuffix(lower, ".svg"):
		w, h, err := checkSVG(data)
		if err != nil {
			return logoInfo{}, fmt.Errorf("%s: %v", name, err)
		}
		return logoInfo{"svg", w, h}, nil
	}
	return logoInfo{}, fmt.Errorf("%s: want an .svg or .png file", name)
}

var (
	forbiddenSVG = []string{"script", "foreignobject", "iframe", "object", "embed", "audio", "video", "handler", "listener"}
	urlRefRE     = regexp.MustCompile(`(?i)url\(\s*['"]?\s*([^'")\s]*)`)
)

func checkSVG(data []byte) (w, h int, err error) {
	if !utf8.Valid(data) {
		return 0, 0, errors.New("not UTF-8 text, so not an SVG file")
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	depth, roots := 0, 0
	inStyle := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, fmt.Errorf("not well-formed SVG: %v", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return 0, 0, errors.New("DOCTYPE and ENTITY declarations are not allowed")
		case xml.ProcInst:
			if t.Target != "xml" {
				return 0, 0, fmt.Errorf("processing instruction <?%s?> is not allowed", t.Target)
			}
		case xml.StartElement:
			local := strings.ToLower(t.Name.Local)
			if depth == 0 {
				if roots++; roots > 1 {
					return 0, 0, errors.New("more than one root element")
				}
				if t.Name.Local != "svg" || t.Name.Space != svgNS {
					return 0, 0, fmt.Errorf("root element must be <svg xmlns=%q>, got <%s> in namespace %q (browsers show nothing without it)", svgNS, t.Name.Local, t.Name.Space)
				}
				w, h = svgSize(t)
			}
			for _, f := range forbiddenSVG {
				if local == f {
					return 0, 0, fmt.Errorf("<%s> is not allowed in a logo", t.Name.Local)
				}
			}
			for _, a := range t.Attr {
				name := strings.ToLower(a.Name.Local)
				switch {
				case strings.HasPrefix(name, "on"):
					return 0, 0, fmt.Errorf("<%s %s=...>: event handlers are not allowed", t.Name.Local, a.Name.Local)
				case name == "href" || name == "src":
					if !strings.HasPrefix(strings.TrimSpace(a.Value), "#") {
						return 0, 0, fmt.Errorf("<%s %s=%q>: external references are not allowed (only #fragments)", t.Name.Local, a.Name.Local, short(a.Value))
					}
				}
				if err := checkCSS(a.Value); err != nil {
					return 0, 0, fmt.Errorf("<%s %s=...>: %v", t.Name.Local, a.Name.Local, err)
				}
			}
			inStyle = local == "style"
			depth++
		case xml.EndElement:
			depth--
			inStyle = false
		case xml.CharData:
			if inStyle {
				if err := checkCSS(string(t)); err != nil {
					return 0, 0, fmt.Errorf("<style>: %v", err)
				}
			}
		}
	}
	if depth != 0 || roots == 0 {
		return 0, 0, errors.New("not a complete SVG document")
	}
	return w, h, nil
}

func checkCSS(s string) error {
	if strings.Contains(strings.ToLower(s), "@import") {
		return errors.New("@import is not allowed")
	}
	for _, m := range urlRefRE.FindAllStringSubmatch(s, -1) {
		if !strings.HasPrefix(m[1], "#") {
			return fmt.Errorf("url(%s): external references are not allowed (only #fragments)", short(m[1]))
		}
	}
	return nil
}

// svgSize reads the viewBox's width and height (0, 0 without one).
func svgSize(t xml.StartElement) (int, int) {
	for _, a := range t.Attr {
		if a.Name.Local != "viewBox" {
			continue
		}
		f := strings.FieldsFunc(a.Value, func(r rune) bool { return r == ' ' || r == ',' })
		if len(f) != 4 {
			return 0, 0
		}
		w, err1 := strconv.ParseFloat(f[2], 64)
		h, err2 := strconv.ParseFloat(f[3], 64)
		if err1 != nil || err2 != nil {
			return 0, 0
		}
		return int(w + .5), int(h + .5)
	}
	return 0, 0
}

func short(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}
