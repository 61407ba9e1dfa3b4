"""The POS terminal side: a software card reader and terminal (the cashier app arrives with issue 4)."""
