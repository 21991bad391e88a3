;; FastCDC 2020 cut-point search kernel (2-byte rolling form, Xia et al. 2020, section 3.7),
;; hand-written WebAssembly so that the 64-bit gear hash runs on native i64.
;;
;; This file is the source of src/internal/kernel-wasm.ts: regenerate that with
;; `pnpm --filter @task-cache/chunker gen:wasm` (wabt); src/internal/generated.test.ts checks that the
;; committed binary is exactly what this file assembles to.
;;
;; Memory layout (set up by the JavaScript side, src/internal/kernel.ts):
;;   [0, 2048)     GEAR[256]          (i64, little endian; already XOR-ed with the seed)
;;   [2048, 4096)  GEAR_SHIFTED[256]  (GEAR[i] << 1, XOR-ed with seed << 1)
;;   [4096, ...)   data block being scanned
;;
;; `scan(p, switchAt, stop)` hashes the byte pairs (p, p+1), (p+2, p+3), ... while a pair fits below
;; `stop`, testing with the small (harder) mask while the pair starts below `switchAt` and with the large
;; mask after. Per pair (the REAPI cut rules):
;;   fp = (fp << 2) + GEAR_SHIFTED[b0]; if (fp & (mask << 1)) == 0: cut after b0 (before b1)
;;   fp = fp + GEAR[b1];                if (fp & mask) == 0:        cut after b1
;; The hash carries over between calls in the global `hash` (the JavaScript side resets it at a chunk
;; start), so one chunk may be scanned across several data blocks. `scan` returns the address just past
;; the cut (the chunk end) when it finds one, else 0; `pos` then holds the address of the next unhashed
;; pair (or the cut), `hash` the hash at that point.
;;
;; NOTE (speed): the pair's second hash is computed as (fp << 2) + (GEAR_SHIFTED[b0] + GEAR[b1]), so the
;; loop-carried dependency is one shift and one add per pair (the first hash and the tests hang off it);
;; with four pairs per iteration this runs ~20% faster than the naive sequence on the machine measured
;; (see docs/benchmarks.md).
(module
  (memory (export "memory") 1)
  (global $hash (export "hash") (mut i64) (i64.const 0))
  (global $pos (export "pos") (mut i32) (i32.const 0))
  (global $ms (mut i64) (i64.const 0))
  (global $msls (mut i64) (i64.const 0))
  (global $ml (mut i64) (i64.const 0))
  (global $mlls (mut i64) (i64.const 0))

  ;; Sets the small and the large mask (mask << 1 is derived here).
  (func (export "configure") (param $ms i64) (param $ml i64)
    (global.set $ms (local.get $ms))
    (global.set $msls (i64.shl (local.get $ms) (i64.const 1)))
    (global.set $ml (local.get $ml))
    (global.set $mlls (i64.shl (local.get $ml) (i64.const 1))))

  ;; Sets the running hash (0 at a chunk start).
  (func (export "reset") (param $h i64)
    (global.set $hash (local.get $h)))

  ;; Records a cut: the hash at the cut and the chunk end address, which it returns.
  (func $cut (param $h i64) (param $end i32) (result i32)
    (global.set $hash (local.get $h))
    (global.set $pos (local.get $end))
    (local.get $end))

  (func (export "scan") (param $p i32) (param $switch i32) (param $stop i32) (result i32)
    (local $h i64)
    (local $t i64)
    (local $gs i64)
    (local $m i64)
    (local $mls i64)
    (local $e i32)
    (local $phase i32)
    (local.set $h (global.get $hash))
    (local.set $m (global.get $ms))
    (local.set $mls (global.get $msls))
    ;; phase 0: small mask up to min(switch, stop); phase 1: large mask up to stop.
    (local.set $e (select (local.get $switch) (local.get $stop)
                          (i32.lt_u (local.get $switch) (local.get $stop))))
    (block $exhausted
      (loop $phases
        ;; four pairs per iteration
        (block $fours_done
          (loop $fours
            (br_if $fours_done (i32.gt_u (i32.add (local.get $p) (i32.const 8)) (local.get $e)))
            ;; pair (0, 1)
            (local.set $t (i64.shl (local.get $h) (i64.const 2)))
            (local.set $gs (i64.load offset=2048 (i32.shl (i32.load8_u (local.get $p)) (i32.const 3))))
            (local.set $h (i64.add (local.get $t)
              (i64.add (local.get $gs) (i64.load (i32.shl (i32.load8_u offset=1 (local.get $p)) (i32.const 3))))))
            (if (i64.eqz (i64.and (i64.add (local.get $t) (local.get $gs)) (local.get $mls)))
              (then (return (call $cut (i64.add (local.get $t) (local.get $gs)) (local.get $p)))))
            (if (i64.eqz (i64.and (local.get $h) (local.get $m)))
              (then (return (call $cut (local.get $h) (i32.add (local.get $p) (i32.const 1))))))
            ;; pair (2, 3)
            (local.set $t (i64.shl (local.get $h) (i64.const 2)))
            (local.set $gs (i64.load offset=2048 (i32.shl (i32.load8_u offset=2 (local.get $p)) (i32.const 3))))
            (local.set $h (i64.add (local.get $t)
              (i64.add (local.get $gs) (i64.load (i32.shl (i32.load8_u offset=3 (local.get $p)) (i32.const 3))))))
            (if (i64.eqz (i64.and (i64.add (local.get $t) (local.get $gs)) (local.get $mls)))
              (then (return (call $cut (i64.add (local.get $t) (local.get $gs)) (i32.add (local.get $p) (i32.const 2))))))
            (if (i64.eqz (i64.and (local.get $h) (local.get $m)))
              (then (return (call $cut (local.get $h) (i32.add (local.get $p) (i32.const 3))))))
            ;; pair (4, 5)
            (local.set $t (i64.shl (local.get $h) (i64.const 2)))
            (local.set $gs (i64.load offset=2048 (i32.shl (i32.load8_u offset=4 (local.get $p)) (i32.const 3))))
            (local.set $h (i64.add (local.get $t)
              (i64.add (local.get $gs) (i64.load (i32.shl (i32.load8_u offset=5 (local.get $p)) (i32.const 3))))))
            (if (i64.eqz (i64.and (i64.add (local.get $t) (local.get $gs)) (local.get $mls)))
              (then (return (call $cut (i64.add (local.get $t) (local.get $gs)) (i32.add (local.get $p) (i32.const 4))))))
            (if (i64.eqz (i64.and (local.get $h) (local.get $m)))
              (then (return (call $cut (local.get $h) (i32.add (local.get $p) (i32.const 5))))))
            ;; pair (6, 7)
            (local.set $t (i64.shl (local.get $h) (i64.const 2)))
            (local.set $gs (i64.load offset=2048 (i32.shl (i32.load8_u offset=6 (local.get $p)) (i32.const 3))))
            (local.set $h (i64.add (local.get $t)
              (i64.add (local.get $gs) (i64.load (i32.shl (i32.load8_u offset=7 (local.get $p)) (i32.const 3))))))
            (if (i64.eqz (i64.and (i64.add (local.get $t) (local.get $gs)) (local.get $mls)))
              (then (return (call $cut (i64.add (local.get $t) (local.get $gs)) (i32.add (local.get $p) (i32.const 6))))))
            (if (i64.eqz (i64.and (local.get $h) (local.get $m)))
              (then (return (call $cut (local.get $h) (i32.add (local.get $p) (i32.const 7))))))
            (local.set $p (i32.add (local.get $p) (i32.const 8)))
            (br $fours)))
        ;; then single pairs
        (block $ones_done
          (loop $ones
            (br_if $ones_done (i32.gt_u (i32.add (local.get $p) (i32.const 2)) (local.get $e)))
            ;; pair (0, 1)
            (local.set $t (i64.shl (local.get $h) (i64.const 2)))
            (local.set $gs (i64.load offset=2048 (i32.shl (i32.load8_u (local.get $p)) (i32.const 3))))
            (local.set $h (i64.add (local.get $t)
              (i64.add (local.get $gs) (i64.load (i32.shl (i32.load8_u offset=1 (local.get $p)) (i32.const 3))))))
            (if (i64.eqz (i64.and (i64.add (local.get $t) (local.get $gs)) (local.get $mls)))
              (then (return (call $cut (i64.add (local.get $t) (local.get $gs)) (local.get $p)))))
            (if (i64.eqz (i64.and (local.get $h) (local.get $m)))
              (then (return (call $cut (local.get $h) (i32.add (local.get $p) (i32.const 1))))))
            (local.set $p (i32.add (local.get $p) (i32.const 2)))
            (br $ones)))
        (br_if $exhausted (local.get $phase))
        (local.set $phase (i32.const 1))
        (local.set $m (global.get $ml))
        (local.set $mls (global.get $mlls))
        (local.set $e (local.get $stop))
        (br $phases)))
    (global.set $hash (local.get $h))
    (global.set $pos (local.get $p))
    (i32.const 0)))
