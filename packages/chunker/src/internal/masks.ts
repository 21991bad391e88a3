/**
 * FastCDC 2020 masks by log2 of the target size (Xia et al. 2020, Table II), as used by REAPI's
 * FastCDC 2020 and its reference implementations. Index = log2(size); only 5..25 are defined.
 */
export const MASKS: ReadonlyMap<number, bigint> = new Map([
  [5, 0x0000000001804110n],
  [6, 0x0000000001803110n],
  [7, 0x0000000018035100n],
  [8, 0x0000001800035300n],
  [9, 0x0000019000353000n],
  [10, 0x0000590003530000n],
  [11, 0x0000d90003530000n],
  [12, 0x0000d90103530000n],
  [13, 0x0000d90303530000n],
  [14, 0x0000d90313530000n],
  [15, 0x0000d90f03530000n],
  [16, 0x0000d90303537000n],
  [17, 0x0000d90703537000n],
  [18, 0x0000d90707537000n],
  [19, 0x0000d91707537000n],
  [20, 0x0000d91747537000n],
  [21, 0x0000d91767537000n],
  [22, 0x0000d93767537000n],
  [23, 0x0000d93777537000n],
  [24, 0x0000d93777577000n],
  [25, 0x0000db3777577000n],
]);

/** Smallest log2 index of {@link MASKS}. */
export const MIN_MASK_BITS = 5;
/** Largest log2 index of {@link MASKS}. */
export const MAX_MASK_BITS = 25;
