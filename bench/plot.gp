# docs/bench.png from bench/plot.dat (written by bench/bench.lua); run from the repository root.
# One bar per scenario: how far the measured ratio is from its target, as
# target/ratio for "<=" targets and ratio/target for ">=" targets, so that 1 or more
# means the target is met; the whiskers span the per-run ratios (min..max).
# With BENCH_ALT_CPATH, plot.dat has the other build's columns too (its header says
# "before"): two bars per scenario, before and after.
before = strstrt(system("head -n 1 bench/plot.dat"), "before") > 0
set terminal pngcairo size 960,540 font "sans,11"
set output "docs/bench.png"
set title "mtmsg benchmarks vs targets: score = target/ratio (<= targets) or ratio/target (>= targets); >= 1 is met"
set ylabel "score (log scale)"
set bmargin 5
set logscale y
set yrange [0.02:200]
set grid ytics
set key top right
set style fill solid 0.6 border -1
set boxwidth 0.6
set offsets 0.6, 0.6, 0, 0
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2 lc rgb "#c00000"
if (!before) {
plot "bench/plot.dat" using 0:2:3:4:(0.6):xtic(sprintf("%s\nratio %.2f\ntarget %s %g", strcol(1), $5, strcol(7), $6)) \
        with boxerrorbars lc rgb "#4a7ab5" title "median ratio (whiskers: per-run min..max)", \
     "" using 0:2:(sprintf("%.2f", $2)) with labels offset 1.6,0.8 notitle
} else {
set terminal pngcairo size 1100,600 font "sans,11"
set output "docs/bench.png"
set title "mtmsg before and after vs targets: score = target/ratio (<= targets) or ratio/target (>= targets);\n>= 1 is met; bars: median ratios, whiskers: per-run min..max"
set bmargin 6
beforefile = system("sed -n 's/^# before = //p' bench/plot.dat")
plot "bench/plot.dat" using 0:(NaN):xtic(sprintf("%s\nratio %.2f after\n%.2f before\ntarget %s %g", strcol(1), $5, $11, strcol(7), $6)) notitle, \
     "" using ($0-0.2):8:9:10:(0.38) with boxerrorbars lc rgb "#a0a0a0" title "before: ".beforefile, \
     "" using ($0+0.2):2:3:4:(0.38) with boxerrorbars lc rgb "#4a7ab5" title "after: this build", \
     "" using ($0-0.2):(0.03):(sprintf("%.2f", $8)) with labels font ",9" notitle, \
     "" using ($0+0.2):(0.03):(sprintf("%.2f", $2)) with labels font ",9" notitle
}
