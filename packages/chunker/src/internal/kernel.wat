;; FastCDC 2020 cut-point search kernel (2-byte rolling form, Xia et al. 2020, section 3.7),
;; hand-written WebAssembly so that the 64-bit gear hash runs on native i64.
;;
;; Source of src/internal/kernel-wasm.ts: regenerate with `pnpm --filter @task-cache/chunker gen:wasm`;
;; src/internal/kernel-wasm.test.ts checks the committed binary against this file.
;;
;; Memory layout (set up by the JavaScript side):
;;   [0, 2048)     GEAR[256]          (i64, little endian; already XOR-ed with the seed)
;;   [2048, 4096)  GEAR_SHIFTED[256]  (GEAR[i] << 1, XOR-ed with seed << 1)
;;   [4096, ...)   data block being scanned
;;
;; `scan(p, switchAt, stop)` hashes the byte pairs (p, p+1), (p+2, p+3), ... while a pair fits below
;; `stop`, with the small (harder) mask while the pair starts below `switchAt`, the large mask after.
;; The hash carries over between calls in the global `hash` (the JavaScript side resets it at a chunk
;; start), so a chunk may be scanned across several data blocks. It returns the address just past the
;; cut (the chunk end) when it finds one, else 0; `pos` always holds the address of the next unhashed pair
;; (or the cut), `hash` the hash at that point.
(module
  (memory (export "memory") 1)
  (global $hash (export "hash") (mut i64) (i64.const 0))
  (global $pos (export "pos") (mut i32) (i32.const 0))
  (global $ms (mut i64) (i64.const 0))
  (global $msls (mut i64) (i64.const 0))
  (global $ml (mut i64) (i64.const 0))
  (global $mlls (mut i64) (i64.const 0))

  ;; Sets the small and large masks (mask << 1 is derived here).
  (func (export "configure") (param $ms i64) (param $ml i64)
    (global.set $ms (local.get $ms))
    (global.set $msls (i64.shl (local.get $ms) (i64.const 1)))
    (global.set $ml (local.get $ml))
    (global.set $mlls (i64.shl (local.get $ml) (i64.const 1))))

  ;; Sets the running hash (0 at a chunk start).
  (func (export "reset") (param $h i64)
    (global.set $hash (local.get $h)))

  (func (export "scan") (param $p i32) (param $switch i32) (param $stop i32) (result i32)
    (local $h i64)
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
        ;; NOTE: two pairs per iteration; the cut tests stay exact, the loop overhead halves.
        (block $tail
          (loop $pairs2
            (br_if $tail (i32.gt_u (i32.add (local.get $p) (i32.const 4)) (local.get $e)))
            (local.set $h (i64.add (i64.shl (local.get $h) (i64.const 2))
              (i64.load offset=2048 (i32.shl (i32.load8_u (local.get $p)) (i32.const 3)))))
            (if (i64.eqz (i64.and (local.get $h) (local.get $mls)))
              (then (global.set $hash (local.get $h)) (global.set $pos (local.get $p))
                    (return (local.get $p))))
            (local.set $h (i64.add (local.get $h)
              (i64.load (i32.shl (i32.load8_u offset=1 (local.get $p)) (i32.const 3)))))
            (if (i64.eqz (i64.and (local.get $h) (local.get $m)))
              (then (global.set $hash (local.get $h))
                    (global.set $pos (i32.add (local.get $p) (i32.const 1)))
                    (return (i32.add (local.get $p) (i32.const 1)))))
            (local.set $h (i64.add (i64.shl (local.get $h) (i64.const 2))
              (i64.load offset=2048 (i32.shl (i32.load8_u offset=2 (local.get $p)) (i32.const 3)))))
            (if (i64.eqz (i64.and (local.get $h) (local.get $mls)))
              (then (global.set $hash (local.get $h))
                    (global.set $pos (i32.add (local.get $p) (i32.const 2)))
                    (return (i32.add (local.get $p) (i32.const 2)))))
            (local.set $h (i64.add (local.get $h)
              (i64.load (i32.shl (i32.load8_u offset=3 (local.get $p)) (i32.const 3)))))
            (if (i64.eqz (i64.and (local.get $h) (local.get $m)))
              (then (global.set $hash (local.get $h))
                    (global.set $pos (i32.add (local.get $p) (i32.const 3)))
                    (return (i32.add (local.get $p) (i32.const 3)))))
            (local.set $p (i32.add (local.get $p) (i32.const 4)))
            (br $pairs2)))
        ;; at most one pair left below e
        (if (i32.le_u (i32.add (local.get $p) (i32.const 2)) (local.get $e))
          (then
            (local.set $h (i64.add (i64.shl (local.get $h) (i64.const 2))
              (i64.load offset=2048 (i32.shl (i32.load8_u (local.get $p)) (i32.const 3)))))
            (if (i64.eqz (i64.and (local.get $h) (local.get $mls)))
              (then (global.set $hash (local.get $h)) (global.set $pos (local.get $p))
                    (return (local.get $p))))
            (local.set $h (i64.add (local.get $h)
              (i64.load (i32.shl (i32.load8_u offset=1 (local.get $p)) (i32.const 3)))))
            (if (i64.eqz (i64.and (local.get $h) (local.get $m)))
              (then (global.set $hash (local.get $h))
                    (global.set $pos (i32.add (local.get $p) (i32.const 1)))
                    (return (i32.add (local.get $p) (i32.const 1)))))
            (local.set $p (i32.add (local.get $p) (i32.const 2)))))
        (br_if $exhausted (local.get $phase))
        (local.set $phase (i32.const 1))
        (local.set $m (global.get $ml))
        (local.set $mls (global.get $mlls))
        (local.set $e (local.get $stop))
        (br $phases)))
    (global.set $hash (local.get $h))
    (global.set $pos (local.get $p))
    (i32.const 0)))
