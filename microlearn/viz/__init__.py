"""Matplotlib figures (functions returning Figures; never ``plt.show()``)."""
