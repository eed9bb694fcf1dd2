"""The owner's day: who took each payment, closing the day, a chart of the takings and the
accountant's workbook.

`service` reads the store and decides; `sentences` says it in the reader's language; `chart`
and `workbook` draw and build files (their libraries imported only when one is made);
`telegram` is the edge: /close, the cashier block in /summary, the chart, the workbook export.
"""
