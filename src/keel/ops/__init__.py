"""Operations: cost accounting, hand-offs."""
