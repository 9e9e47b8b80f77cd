package integration

import (
	"fmt"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// BenchmarkSCIMScaling is the scaling curve of docs/benchmarks.md: BenchmarkSCIMLoad's run on
// SQLite at 10,000 and 100,000 users, one fresh server each, plus SCIM_BENCH_USERS when it is set
// to another size (SCIM_BENCH_USERS=1000000 adds the million-user point, which takes about 15
// minutes of creates on a 2-vCPU machine). SCIM_BENCH_SCALING_SIZES="2000,20000" replaces the
// list, for a quick look. It writes the table (scim-scaling.md) and the plot (scim-scaling.png,
// drawn with gonum.org/v1/plot) into SCIM_BENCH_OUT, by default docs/benchmarks/, so that a run
// of `make bench` refreshes what the docs show.
//
//	go test -run '^$' -bench BenchmarkSCIMScaling -benchtime 1x -timeout 120m ./integration/
func BenchmarkSCIMScaling(b *testing.B) {
	sizes := scalingSizes(b)
	out := os.Getenv("SCIM_BENCH_OUT")
	if out == "" {
		out = filepath.Join("..", "docs", "benchmarks")
	}
	require.NoError(b, os.MkdirAll(out, 0o755))

	var results []loadResult
	for _, n := range sizes {
		results = append(results, scimLoad(b, "SQLite", n, "--storage", "sqlite"))
	}
	table := scalingTable(results)
	fmt.Fprintln(os.Stderr, table)
	require.NoError(b, os.WriteFile(filepath.Join(out, "scim-scaling.md"), []byte(table), 0o644))
	require.NoError(b, writeScalingPlot(filepath.Join(out, "scim-scaling.png"), results))
}

// scalingSizes is the list of user counts to run, smallest first.
func scalingSizes(b *testing.B) []int {
	b.Helper()
	var sizes []int
	if v := os.Getenv("SCIM_BENCH_SCALING_SIZES"); v != "" {
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			require.NoError(b, err, "SCIM_BENCH_SCALING_SIZES")
			require.Positive(b, n, "SCIM_BENCH_SCALING_SIZES")
			sizes = append(sizes, n)
		}
	} else {
		sizes = []int{10_000, 100_000}
		if n := envInt(b, "SCIM_BENCH_USERS", 0); n > 0 {
			sizes = append(sizes, n)
		}
	}
	slices.Sort(sizes)
	return slices.Compact(sizes)
}

// scalingTable renders the results as the Markdown table docs/benchmarks.md shows.
func scalingTable(rs []loadResult) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "SCIM load on SQLite over HTTPS, one server per size (%s, load average %s at the end)\n\n",
		time.Now().UTC().Format("2006-01-02"), loadAvg())
	sb.WriteString("| users | creates/s (p99) | lookups/s (p99) | deactivations/s | server CPU per create / lookup / deactivation | server RSS after preload / end | data dir (per user) |\n")
	sb.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range rs {
		fmt.Fprintf(&sb, "| %d | %.0f (%.1f ms) | %.0f (%.2f ms) | %.0f | %.2f / %.3f / %.2f ms | %.0f / %.0f MiB | %.0f MB (%.2f KB) |\n",
			r.users, r.createRate, ms(r.createP99), r.lookupRate, ms(r.lookupP99), r.deacRate,
			ms(r.cpuCreate), ms(r.cpuLookup), ms(r.cpuDeac), r.rssLoadedMiB, r.rssEndMiB,
			r.dataDirMB, r.dataDirMB*1000/float64(r.users))
	}
	return sb.String()
}

// writeScalingPlot draws five panels against the number of users (log scale): throughput,
// p99 latency, server CPU per operation, server memory after the preload, and data dir size
// per user. A flat lookup line
// in the first two panels is what "lookups do not slow down as users grow" looks like.
func writeScalingPlot(path string, rs []loadResult) error {
	series := func(y func(loadResult) float64) plotter.XYs {
		xys := make(plotter.XYs, len(rs))
		for i, r := range rs {
			xys[i] = plotter.XY{X: float64(r.users), Y: y(r)}
		}
		return xys
	}
	blue, orange := color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 255, G: 127, B: 14, A: 255}
	green := color.RGBA{R: 44, G: 160, B: 44, A: 255}
	panel := func(title, ylabel string, lines ...any) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "users"
		p.Y.Label.Text = ylabel
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Min = 0
		p.Legend.Top = true
		for i := 0; i < len(lines); i += 3 {
			l, pts, err := plotter.NewLinePoints(lines[i+1].(plotter.XYs))
			if err != nil {
				return nil, err
			}
			c := lines[i+2].(color.RGBA)
			l.Color, pts.Color = c, c
			l.Width = vg.Points(1.5)
			pts.Shape = draw.CircleGlyph{}
			p.Add(l, pts)
			p.Legend.Add(lines[i].(string), l, pts)
		}
		p.Y.Max *= 1.25 // headroom for the legend
		return p, nil
	}
	throughput, err := panel("Throughput", "operations/s",
		"lookups/s", series(func(r loadResult) float64 { return r.lookupRate }), blue,
		"creates/s", series(func(r loadResult) float64 { return r.createRate }), orange)
	if err != nil {
		return err
	}
	latency, err := panel("p99 latency", "ms",
		"lookup p99", series(func(r loadResult) float64 { return ms(r.lookupP99) }), blue,
		"create p99", series(func(r loadResult) float64 { return ms(r.createP99) }), orange)
	if err != nil {
		return err
	}
	cpu, err := panel("Server CPU per operation", "ms",
		"lookup", series(func(r loadResult) float64 { return ms(r.cpuLookup) }), blue,
		"create", series(func(r loadResult) float64 { return ms(r.cpuCreate) }), orange,
		"deactivation", series(func(r loadResult) float64 { return ms(r.cpuDeac) }), green)
	if err != nil {
		return err
	}
	memory, err := panel("Server memory after the preload", "MiB (RSS)",
		"RSS", series(func(r loadResult) float64 { return r.rssLoadedMiB }), blue)
	if err != nil {
		return err
	}
	disk, err := panel("Data dir per user", "KB",
		"data dir / users", series(func(r loadResult) float64 { return r.dataDirMB * 1000 / float64(r.users) }), blue)
	if err != nil {
		return err
	}
	// Server CPU per operation is the panel to read on a busy machine: throughput and latency
	// move with whatever else runs on the cores, CPU per operation much less.
	plots := [][]*plot.Plot{{throughput, latency, cpu}, {memory, disk, nil}}
	img := vgimg.New(vg.Points(1200), vg.Points(640))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 3, PadX: vg.Points(24), PadY: vg.Points(24),
		PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(8)}
	canvases := plot.Align(plots, tiles, dc)
	for j := range plots {
		for i, p := range plots[j] {
			if p != nil {
				p.Draw(canvases[j][i])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// TestScalingReport checks the scaling table and plot on made-up results: one row per size, and
// a PNG that decodes.
func TestScalingReport(t *testing.T) {
	t.Parallel()
	rs := []loadResult{
		{users: 10_000, createRate: 2500, lookupRate: 15000, deacRate: 2600, createP99: 30 * time.Millisecond,
			lookupP99: 4 * time.Millisecond, cpuCreate: 300 * time.Microsecond, cpuLookup: 50 * time.Microsecond, cpuDeac: 280 * time.Microsecond,
			rssLoadedMiB: 60, rssEndMiB: 70, dataDirMB: 14},
		{users: 100_000, createRate: 2300, lookupRate: 14500, deacRate: 2500, createP99: 35 * time.Millisecond,
			lookupP99: 4500 * time.Microsecond, cpuCreate: 320 * time.Microsecond, cpuLookup: 52 * time.Microsecond, cpuDeac: 290 * time.Microsecond,
			rssLoadedMiB: 140, rssEndMiB: 150, dataDirMB: 140},
	}
	table := scalingTable(rs)
	require.Contains(t, table, "| 10000 | 2500 (30.0 ms) | 15000 (4.00 ms) |")
	require.Contains(t, table, "| 140 MB (1.40 KB) |")

	path := filepath.Join(t.TempDir(), "scaling.png")
	if p := os.Getenv("SCIM_SCALING_TEST_PNG"); p != "" {
		path = p // to look at the plot
	}
	require.NoError(t, writeScalingPlot(path, rs))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	require.Equal(t, 1600, img.Bounds().Dx(), "1,200 points at vgimg's 96 dpi")
}
